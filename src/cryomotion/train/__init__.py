"""Training shared by every system, and what a run leaves behind.

- ``config``: typed settings (``RunConfig``), YAML with version, time and command line;
- ``trainer.Trainer``: Adam, epochs, checkpoints, exact resume, torchrun/DDP;
- ``run.train_run``: a run from a config (what ``cryomotion train`` calls);
- ``run_dir.RunPaths``: the files of a run folder;
- ``results``: a finished run read back (``load_run``), per-particle models
  (``particle_coords``, ``export_models``);
- ``checkpoint``, ``distributed``, ``losses``, ``metrics``, ``split``: the pieces;
- ``demo``: the tour behind ``cryomotion demo``.
"""

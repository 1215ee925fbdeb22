"""Training shared by every system, and what a run leaves behind.

- ``config``: typed settings (``RunConfig``), YAML with version, time and command line;
- ``trainer.Trainer``: phases, Adam, epochs, checkpoints, exact resume, torchrun/DDP,
  per-particle table updates;
- ``calibrate``: the intensity scale fitted before training; ``sanity``: box checks;
- ``run.train_run``: a run from a config (what ``cryomotion train`` calls);
- ``run_dir.RunPaths``: the files of a run folder;
- ``results``: a finished run read back (``load_run``), per-particle models
  (``particle_coords``, ``export_models``);
- ``checkpoint``, ``distributed``, ``metrics``, ``split``: the pieces.
"""

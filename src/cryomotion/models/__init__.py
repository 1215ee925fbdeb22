"""The pieces a system is made of, above the deformations and the renderer.

- ``encoder``: image encoders (the VGG-like CNN of seed 000) and MLP heads;
- ``inference``: ``Inference`` / ``Estimates`` and ``AmortizedEncoder``;
- ``per_particle``: per-particle tables updated by inner loops (``ParticleState``);
- ``pose``: pose modes (given, refine, infer) and pose composition;
- ``intensity``: the scale between the data's units and the renderer's;
- ``variational``: KL, reparameterisation, log-mean-exp;
- ``objectives``: reconstruction and regression objectives (they own the loss);
- ``schedule``: training phases;
- ``motion_model``: inference -> deformation -> renderer.
"""

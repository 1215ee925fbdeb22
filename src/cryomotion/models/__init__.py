"""Encoders, the autoencoder wiring and the registry of motion-model systems.

- ``encoder``: the VGG-like CNN of seed 000 and its MLP heads (``ImageEncoder``);
- ``autoencoder.MotionAutoencoder``: encoder -> deformation -> renderer;
- ``registry``: systems by name (``get_system("nma")``), each a deformation and what it
  needs prepared in a run folder; ``nma``: seed 000.
"""

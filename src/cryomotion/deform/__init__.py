"""Deformations of a reference model behind one interface (``base.Deformation``):
latents (B, d) -> atom coordinates (B, atoms, 3) Å plus regularisation terms.

- ``normal_modes.NormalModeDeformation``: X0 + Σ z_l U_l (seed 000).
"""

"""Deformation along normal modes (seed 000): X(z) = X0 + Σ_l z_l U_l."""

from __future__ import annotations

import math

import numpy as np
import torch

from cryomotion.deform.base import Deformation, Deformed
from cryomotion.dynamics.mode_deformation import deform_along_modes


class NormalModeDeformation(Deformation):
    """The reference model moved along d all-atom normal modes.

    Parameters
    ----------
    reference : (atoms, 3) Å, the reference coordinates X0.
    modes : (d, atoms, 3) the orthonormal all-atom basis U (``NormalModes.vectors``); d
        may be 0 (rigid reference).

    The latents are the mode ``amplitudes`` z (B, d) in Å, in the convention of
    ``cryomotion.dynamics`` (``NormalModes.conformations``): |z| is the norm of the
    displacement summed over all atoms. ``latent_scale`` = sqrt(atoms), so an encoder
    output of 1 moves the atoms by 1 Å RMS. Both arrays are registered buffers: the
    deformation has no parameters.
    """

    def __init__(self, reference: np.ndarray | torch.Tensor, modes: np.ndarray | torch.Tensor):
        super().__init__()
        reference = torch.tensor(np.asarray(reference), dtype=torch.float32)
        modes = torch.tensor(np.asarray(modes), dtype=torch.float32)
        if reference.ndim != 2 or reference.shape[1] != 3:
            raise ValueError(f"reference of shape {tuple(reference.shape)}, expected (atoms, 3)")
        n_atoms = reference.shape[0]
        if modes.numel() == 0:
            modes = modes.reshape(0, n_atoms, 3)
        if modes.ndim != 3 or modes.shape[1:] != (n_atoms, 3):
            raise ValueError(f"modes of shape {tuple(modes.shape)}, expected (d, {n_atoms}, 3)")
        self.latent_dim = modes.shape[0]
        self.n_atoms = n_atoms
        self.latent_scale = math.sqrt(n_atoms)
        self.register_buffer("reference", reference)
        self.register_buffer("modes", modes)

    def deform(self, latents: torch.Tensor) -> Deformed:
        """``latents`` = amplitudes (B, d) Å -> coords (B, atoms, 3) Å."""
        self.check_latents(latents)
        return Deformed(deform_along_modes(self.reference, self.modes, latents), {})

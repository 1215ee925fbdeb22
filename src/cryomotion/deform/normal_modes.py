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

    eigenvalues : (d,) the modes' eigenvalues λ_k (ascending, any unit), for the prior; None:
        every mode equally stiff.
    prior_weight : weight w of the thermal prior on the amplitudes (0: none).
    modes_lr : Adam learning rate of the mode vectors themselves (0: a fixed basis, seed
        000). With a rate the basis starts at ``modes`` and learns from the images the
        directions the particles actually move along (a domain turning about a hinge is
        not a combination of a few elastic modes; it is, to a few hundredths of an Å, one
        of two or three fixed directions); each vector is used normalised, so amplitudes
        keep their units and the prior its meaning (mode k keeps λ_k).

    The latents are the mode ``amplitudes`` z (B, d) in Å, in the convention of
    ``cryomotion.dynamics`` (``NormalModes.conformations``): |z| is the norm of the
    displacement summed over all atoms. ``latent_scale`` = sqrt(atoms), so an encoder
    output of 1 moves the atoms by 1 Å RMS. The arrays are registered buffers (the modes a
    parameter when they learn).

    The prior is the elastic energy of the network in thermal equilibrium, ⟨z_k²⟩ ∝ kT/λ_k:
    the regularisation term "mode_prior" is w Σ_k (λ_k/λ_1) (z_k / latent_scale)², averaged
    over the batch, so moving the softest mode by 1 Å RMS costs w (in the objective's units)
    and mode k λ_k/λ_1 times more. Without it the stiffer modes are free to grow far beyond
    their thermal size to stand in for what the modes cannot hold (a rigid turn of the
    whole particle in the frame of its pose, ``docs/results.md`` section nma_hinge).
    """

    def __init__(
        self,
        reference: np.ndarray | torch.Tensor,
        modes: np.ndarray | torch.Tensor,
        eigenvalues: np.ndarray | torch.Tensor | None = None,
        prior_weight: float = 0.0,
        modes_lr: float = 0.0,
    ):
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
        if not modes_lr >= 0:
            raise ValueError(f"modes learning rate {modes_lr}: expected >= 0")
        self.modes_lr = float(modes_lr)
        if self.modes_lr > 0:
            self.modes = torch.nn.Parameter(modes)
        else:
            self.register_buffer("modes", modes)
        if eigenvalues is None:
            eigenvalues = np.ones(self.latent_dim)
        eigenvalues = torch.tensor(np.array(eigenvalues, dtype=np.float64), dtype=torch.float32)
        if eigenvalues.shape != (self.latent_dim,) or not bool((eigenvalues > 0).all()):
            raise ValueError(
                f"eigenvalues of shape {tuple(eigenvalues.shape)}: expected {self.latent_dim} "
                "positive values"
            )
        if not prior_weight >= 0:
            raise ValueError(f"prior weight {prior_weight}: expected >= 0")
        stiffness = eigenvalues / eigenvalues.min() if self.latent_dim else eigenvalues
        self.register_buffer("stiffness", stiffness, persistent=False)  # λ_k / λ_1 (from λ)
        self.prior_weight = float(prior_weight)

    def basis(self) -> torch.Tensor:
        """(d, atoms, 3) the mode vectors the amplitudes move along (unit norm each)."""
        if not self.modes_lr:
            return self.modes
        norms = self.modes.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.modes / norms[:, None, None]

    def parameter_groups(self, lr: float) -> list[dict]:
        """One group "modes" at ``modes_lr`` when the basis learns, else none."""
        if not self.modes_lr:
            return []
        return [{"name": "modes", "params": [self.modes], "lr": self.modes_lr}]

    def deform(self, latents: torch.Tensor) -> Deformed:
        """``latents`` = amplitudes (B, d) Å -> coords (B, atoms, 3) Å."""
        self.check_latents(latents)
        coords = deform_along_modes(self.reference, self.basis(), latents)
        if not self.prior_weight or not self.latent_dim:
            return Deformed(coords, {})
        scaled = latents.to(coords.dtype) / self.latent_scale
        energy = (scaled.square() * self.stiffness).sum(dim=-1).mean()
        return Deformed(coords, {"mode_prior": self.prior_weight * energy})

"""The deformation interface: latents (..., d) -> points (..., P, 3) in Å.

Every motion model (normal modes, segments, residue frames, flow fields) implements it,
so the encoder, the renderer, the trainer and the exporters never know which one moved
the atoms.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch
from torch import nn


class Deformed(NamedTuple):
    """Output of a deformation.

    points : (..., P, 3) Å, in the reference model's frame: the reference's atoms in its
        atom order (``Deformation.points_are_atoms``), or other points (pseudo-atoms).
    regularization : name -> scalar tensor, the deformation's own priors, already weighted
        and averaged over every leading dimension; objectives add them to the loss.
    amplitudes : (..., P) or (P,) per-point scattering amplitudes, or None (fixed weights).
    """

    points: torch.Tensor
    regularization: dict[str, torch.Tensor]
    amplitudes: torch.Tensor | None = None

    @property
    def coords(self) -> torch.Tensor:
        """The points, when they are atoms: (..., atoms, 3) Å."""
        return self.points


class Deformation(nn.Module, abc.ABC):
    """Base class of the deformations of a reference model (held as a buffer or parameter).

    Subclasses set ``latent_dim`` (d, may be 0), ``n_atoms`` and ``latent_scale`` (the
    size of a typical latent: an encoder's unit output is multiplied by it), hold the
    undeformed points as the buffer ``reference`` (P, 3) Å, and implement ``deform`` on
    (B, d) latents; calling the deformation accepts any leading dimensions.
    """

    latent_dim: int
    n_atoms: int
    latent_scale: float = 1.0
    points_are_atoms: bool = True  # False: analysis writes maps, not models

    @abc.abstractmethod
    def deform(self, latents: torch.Tensor) -> Deformed:
        """``latents`` (B, d) -> ``Deformed`` with points (B, P, 3) Å."""

    def forward(self, latents: torch.Tensor) -> Deformed:
        """``latents`` (..., d) -> ``Deformed`` with points (..., P, 3) Å."""
        if latents.ndim == 2:
            return self.deform(latents)
        if latents.ndim < 1 or latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__}: latents of shape {tuple(latents.shape)}, "
                f"expected (..., {self.latent_dim})"
            )
        lead = latents.shape[:-1]
        out = self.deform(latents.reshape(-1, self.latent_dim))
        points = out.points.reshape(*lead, *out.points.shape[-2:])
        amplitudes = out.amplitudes
        if amplitudes is not None and amplitudes.ndim == 2:
            amplitudes = amplitudes.reshape(*lead, amplitudes.shape[-1])
        return Deformed(points, out.regularization, amplitudes)

    def atoms(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., d) -> the reference model's atoms (..., atoms, 3) Å as this deformation
        moves them: its points, for a deformation whose points are the atoms; a deformation
        of other points (3DFlex's pseudo-atoms) carries the atoms itself."""
        return self(latents).points

    def scatterers(self):
        """What the points are (``imaging.scatterers.Scatterers``) when they are not the
        reference model's atoms; None: its atoms, with their elements' form factors."""
        return None

    def rest(self) -> Deformed:
        """The undeformed points (P, 3) Å (a pose-only phase renders these), no terms."""
        return Deformed(self.reference, {})

    def parameter_groups(self, lr: float) -> list[dict]:
        """Named optimizer groups of the learned parameters (none for a fixed basis): by
        default one group "decoder" at the trainer's learning rate ``lr``."""
        parameters = list(self.parameters())
        return [{"name": "decoder", "params": parameters, "lr": lr}] if parameters else []

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``latents`` has shape (B, latent_dim)."""
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__}: latents of shape {tuple(latents.shape)}, "
                f"expected (batch, {self.latent_dim})"
            )

"""The deformation interface: latents (B, d) -> atom coordinates (B, atoms, 3) in Å.

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

    coords : (B, atoms, 3) Å, in the reference model's frame and atom order.
    regularization : name -> scalar tensor, the deformation's own priors, already weighted
        and averaged over the batch; the trainer adds them to the image loss.
    """

    coords: torch.Tensor
    regularization: dict[str, torch.Tensor]


class Deformation(nn.Module, abc.ABC):
    """Base class of the deformations of a reference model (held as a buffer or parameter).

    Subclasses set ``latent_dim`` (d, may be 0), ``n_atoms`` and ``latent_scale`` (the
    size of a typical latent: an encoder's unit output is multiplied by it) and implement
    ``forward``.
    """

    latent_dim: int
    n_atoms: int
    latent_scale: float = 1.0

    @abc.abstractmethod
    def forward(self, latents: torch.Tensor) -> Deformed:
        """``latents`` (B, d) -> ``Deformed`` with coords (B, atoms, 3) Å."""

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups of the learned parameters (none for a fixed basis);
        by default one group at the trainer's learning rate ``lr``."""
        parameters = list(self.parameters())
        return [{"params": parameters, "lr": lr}] if parameters else []

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``latents`` has shape (B, latent_dim)."""
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__}: latents of shape {tuple(latents.shape)}, "
                f"expected (batch, {self.latent_dim})"
            )

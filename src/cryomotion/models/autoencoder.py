"""The autoencoder wiring: image encoder -> deformation -> renderer (DESIGN.md data flow)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cryomotion.deform.base import Deformation
from cryomotion.models.encoder import ImageEncoder


class Encoded(NamedTuple):
    """Per-particle estimates: ``latents`` (B, d) and ``shifts`` (B, 2) Å (total, in the
    particle file's convention: the file's shift plus the predicted correction)."""

    latents: torch.Tensor
    shifts: torch.Tensor


class Reconstruction(NamedTuple):
    """``images`` (B, D, D) rendered from ``encoded``; ``regularization`` from the deformation."""

    images: torch.Tensor
    encoded: Encoded
    regularization: dict[str, torch.Tensor]


class MotionAutoencoder(nn.Module):
    """Encoder heads ``shifts`` (2) and ``latents`` (d) -> deformation(latents) -> renderer.

    The latent head's output is multiplied by the deformation's ``latent_scale``; the
    shift head predicts a correction (Å) added to the shifts given with the images.

    The renderer receives the deformed coordinates (B, atoms, 3) Å, the known rotations
    (B, 3, 3), the shifts (B, 2) Å and the CTF parameters (B, 8) and returns images
    (B, D, D). With ``mixed_precision`` the encoder runs under bfloat16 autocast on CUDA;
    the deformation and the renderer always run in float32.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        deformation: Deformation,
        renderer: nn.Module,
        mixed_precision: bool = False,
    ):
        super().__init__()
        if encoder.sizes.get("latents") != deformation.latent_dim or "shifts" not in encoder.sizes:
            raise ValueError(
                f"encoder outputs {encoder.sizes} do not match a deformation with "
                f"{deformation.latent_dim} latent dimensions (expected 'shifts': 2 and "
                f"'latents': {deformation.latent_dim})"
            )
        self.encoder = encoder
        self.deformation = deformation
        self.renderer = renderer
        self.mixed_precision = mixed_precision

    def encode(self, images: torch.Tensor, prior_shifts: torch.Tensor) -> Encoded:
        """Images (B, D, D) and the shifts given with them (B, 2) Å -> ``Encoded``."""
        device_type = images.device.type
        with torch.autocast(
            device_type,
            dtype=torch.bfloat16,
            enabled=self.mixed_precision and device_type == "cuda",
        ):
            outputs = self.encoder(images)
        shifts = prior_shifts.float() + outputs["shifts"].float()
        latents = outputs["latents"].float() * self.deformation.latent_scale
        return Encoded(latents, shifts)

    def forward(
        self,
        images: torch.Tensor,
        rotations: torch.Tensor,
        prior_shifts: torch.Tensor,
        ctf: torch.Tensor | None,
    ) -> Reconstruction:
        encoded = self.encode(images, prior_shifts)
        deformed = self.deformation(encoded.latents)
        rendered = self.renderer(deformed.coords, rotations, encoded.shifts, ctf)
        return Reconstruction(rendered, encoded, deformed.regularization)

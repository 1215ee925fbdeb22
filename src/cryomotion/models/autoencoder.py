"""The autoencoder wiring: image encoder -> deformation -> renderer (DESIGN.md data flow)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cryomotion.deform.base import Deformation
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale, fitted_scale
from cryomotion.train.losses import IMAGE_LOSSES, gaussian_kl

LOG_VAR_BOUND = 10.0


class Encoded(NamedTuple):
    """Per-particle estimates: ``latents`` (B, d) and ``shifts`` (B, 2) Å (total, in the
    particle file's convention: the file's shift plus the predicted correction); for a
    VAE ``latents`` is the posterior mean and ``log_var`` (B, d) its log variance."""

    latents: torch.Tensor
    shifts: torch.Tensor
    log_var: torch.Tensor | None = None


class Reconstruction(NamedTuple):
    """``images`` (B, D, D) rendered from ``encoded`` and ``measured`` (B, D, D), the input
    images, both in normalised data units (``IntensityScale``); ``regularization`` from the
    deformation (and the VAE's KL)."""

    images: torch.Tensor
    measured: torch.Tensor
    encoded: Encoded
    regularization: dict[str, torch.Tensor]


class MotionAutoencoder(nn.Module):
    """Encoder heads ``shifts`` (2) and ``latents`` (d) -> deformation(latents) -> renderer.

    The latent head's output is multiplied by the deformation's ``latent_scale``; the
    shift head predicts a correction (Å) added to the shifts given with the images.

    With ``variational`` (a VAE, seed 001) the encoder has a ``latent_log_var`` head too:
    in training the deformation receives a reparameterised sample of N(mean, var) and the
    regularisation gains ``latent_kl`` (KL to N(0, I), batch mean, times
    ``latent_kl_weight``); in eval mode it receives the mean. ``image_loss`` names the
    loss the trainer applies to (rendered, measured) images (``train.losses``).

    The renderer receives the deformed coordinates (B, atoms, 3) Å, the known rotations
    (B, 3, 3), the shifts (B, 2) Å and the CTF parameters (B, 8) and returns images
    (B, D, D). ``intensity`` puts measured and rendered images into one unit system
    (normalised data units) that does not depend on the data's own units; the encoder sees
    the normalised images. With ``mixed_precision`` the encoder runs under bfloat16
    autocast on CUDA; the deformation and the renderer always run in float32.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        deformation: Deformation,
        renderer: nn.Module,
        mixed_precision: bool = False,
        variational: bool = False,
        latent_kl_weight: float = 1.0,
        image_loss: str = "l2",
        intensity: IntensityScale | None = None,
    ):
        super().__init__()
        d = deformation.latent_dim
        expected = {"shifts": 2, "latents": d} | ({"latent_log_var": d} if variational else {})
        if encoder.sizes != expected:
            raise ValueError(
                f"encoder outputs {encoder.sizes} do not match a deformation with {d} latent "
                f"dimensions (expected {expected})"
            )
        if image_loss not in IMAGE_LOSSES:
            names = ", ".join(IMAGE_LOSSES)
            raise ValueError(f"image loss {image_loss!r}: expected one of {names}")
        self.encoder = encoder
        self.deformation = deformation
        self.renderer = renderer
        self.mixed_precision = mixed_precision
        self.variational = variational
        self.latent_kl_weight = latent_kl_weight
        self.image_loss_name = image_loss
        self.image_loss = IMAGE_LOSSES[image_loss]
        self.intensity = intensity if intensity is not None else IntensityScale(mode="none")

    def encode(self, images: torch.Tensor, prior_shifts: torch.Tensor) -> Encoded:
        """Images (B, D, D), data units, and the shifts given with them (B, 2) Å -> ``Encoded``."""
        return self._encode_normalized(self.intensity.normalize(images), prior_shifts)

    def _encode_normalized(self, images: torch.Tensor, prior_shifts: torch.Tensor) -> Encoded:
        device_type = images.device.type
        with torch.autocast(
            device_type,
            dtype=torch.bfloat16,
            enabled=self.mixed_precision and device_type == "cuda",
        ):
            outputs = self.encoder(images)
        shifts = prior_shifts.float() + outputs["shifts"].float()
        latents = outputs["latents"].float() * self.deformation.latent_scale
        log_var = None
        if self.variational:
            # bounded so exp() neither overflows nor collapses the sample to the mean
            log_var = outputs["latent_log_var"].float().clamp(-LOG_VAR_BOUND, LOG_VAR_BOUND)
        return Encoded(latents, shifts, log_var)

    def forward(
        self,
        images: torch.Tensor,
        rotations: torch.Tensor,
        prior_shifts: torch.Tensor,
        ctf: torch.Tensor | None,
        optics_groups: torch.Tensor | None = None,
    ) -> Reconstruction:
        """Images (B, D, D) data units, rotations (B, 3, 3), shifts (B, 2) Å, CTF (B, 8),
        optics group indices (B,) (None: all group 0) -> ``Reconstruction``."""
        measured = self.intensity.normalize(images)
        encoded = self._encode_normalized(measured, prior_shifts)
        latents = encoded.latents
        regularization: dict[str, torch.Tensor] = {}
        if self.variational:
            if self.training:
                noise = torch.randn_like(latents)
                latents = latents + noise * (0.5 * encoded.log_var).exp()
            kl = gaussian_kl(encoded.latents, encoded.log_var).mean()
            regularization["latent_kl"] = self.latent_kl_weight * kl
        deformed = self.deformation(latents)
        rendered = self.renderer(deformed.coords, rotations, encoded.shifts, ctf)
        rendered = self.intensity.scale_rendered(rendered, optics_groups)
        if self.intensity.per_image:
            rendered = rendered * fitted_scale(rendered, measured)[:, None, None]
        return Reconstruction(
            rendered, measured, encoded, regularization | deformed.regularization
        )

"""Inference: how each particle gets its latents and its pose.

Every system answers one question per batch: given the particles' (normalised) images and
what the particle file says about them, what are their latents and poses? ``Inference``
is that interface; ``Estimates`` its answer. ``AmortizedEncoder`` answers with a network
from the image (seeds 000, 001; AtomVAE's encoder and DeepHEMNMA's regressor are built on
it). Per-particle tables (``models.per_particle``) answer from state kept per particle.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import torch
from torch import nn

from cryomotion.imaging.pose import Pose
from cryomotion.models.encoder import HIDDEN, ImageEncoder, MLPHead
from cryomotion.models.pose import compose_pose
from cryomotion.models.variational import gaussian_kl

LOG_VAR_BOUND = 10.0


class Estimates(NamedTuple):
    """What an inference gives a batch of B particles.

    latents : (B, S, d) what the decoder receives: S samples (training a VAE) or the
        point estimate (S = 1).
    mean_latents : (B, d) the point estimate (a VAE's posterior mean): what is written.
    pose : ``Pose`` (B,) to render with, in the particle file's conventions.
    priors : name -> (B,) per-particle prior terms (e.g. "latent_kl"), unweighted.
    log_var : (B, d) a VAE posterior's log variance, or None.
    sample_pose : ``Pose`` (B, S1, S2) to render the samples with when each conformation
        sample has its own pose samples (AtomVAE, seed 002), else None: ``pose`` for all.
    """

    latents: torch.Tensor
    mean_latents: torch.Tensor
    pose: Pose
    priors: dict[str, torch.Tensor]
    log_var: torch.Tensor | None = None
    sample_pose: Pose | None = None


class Inference(nn.Module, abc.ABC):
    """Per-particle latents and poses of a batch (see the module docstring)."""

    latent_dim: int

    @abc.abstractmethod
    def forward(self, images: torch.Tensor, batch: dict, samples: int = 1) -> Estimates:
        """Normalised images (B, D, D) and the batch (``rotation`` (B, 3, 3), ``shift``
        (B, 2) Å, ``index`` (B,), ...) -> ``Estimates`` with ``samples`` samples."""

    def per_particle_state(self) -> list[str]:
        """Names of buffers holding per-particle state (not synchronised by DDP)."""
        return []

    def infer(self, model: nn.Module, batch: dict, phase=None, predict: bool = False) -> None:
        """Update the per-particle state of ``batch`` before its estimates are read: the
        trainer calls it on the unwrapped ``model`` (a ``MotionModel``) before each outer
        step (``phase`` the current ``Phase``) and before predicting (``predict``). An
        auto-decoder (3DFlex's latent table) runs its inner loop here; the default does
        nothing."""

    def sync(self, index: torch.Tensor) -> None:
        """All-gather the rows ``index`` (B,) that ``infer`` updated (no-op by default)."""


class ConditionedHead(nn.Module):
    """A head on the image features and another head's sample: (B, F), (B, S, c) -> (B, S, out).

    For posteriors that depend on a sample of another latent (AtomVAE's pose posterior is
    conditioned on each conformation sample); the condition is concatenated to the features.
    """

    def __init__(
        self, n_features: int, n_condition: int, n_out: int, hidden: tuple[int, ...] = HIDDEN
    ):
        super().__init__()
        self.head = MLPHead(n_features + n_condition, n_out, hidden)
        self.n_condition = n_condition

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        expanded = features[:, None, :].expand(*condition.shape[:-1], features.shape[-1])
        return self.head(torch.cat([expanded, condition.to(features.dtype)], dim=-1))


class AmortizedEncoder(Inference):
    """An image encoder with heads ``shifts`` (2: a correction to the file's shift, Å) and
    ``latents`` (d, times ``latent_scale``), for a VAE ``latent_log_var`` (d), and with
    ``rotation_scale`` > 0 ``rotation`` (3: a rotation vector, times ``rotation_scale``
    radians, correcting the file's rotation: R = R_file · exp([ω]×), ``compose_pose``).

    The pose is the file's rotation (so corrected, where there is a rotation head) and its
    shift plus the predicted correction. The rotation head serves deformations that hold no
    rigid motion (normal modes are orthogonal to it) when a particle's conformation is
    turned as a whole against the reference in the frame of its pose, as a hinge motion
    with the core held where the pose puts it is. A VAE
    samples its latents by reparameterisation in training (``samples`` of them) and gives
    its mean in eval mode; its prior term is the KL to N(0, I), per particle. With
    ``mixed_precision`` the encoder runs under bfloat16 autocast on CUDA.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        latent_dim: int,
        latent_scale: float = 1.0,
        variational: bool = False,
        mixed_precision: bool = False,
        rotation_scale: float = 0.0,
    ):
        super().__init__()
        if not rotation_scale >= 0:
            raise ValueError(f"rotation scale {rotation_scale}: expected >= 0 radians")
        expected = (
            {"shifts": 2, "latents": latent_dim}
            | ({"latent_log_var": latent_dim} if variational else {})
            | ({"rotation": 3} if rotation_scale > 0 else {})
        )
        if encoder.sizes != expected:
            raise ValueError(
                f"encoder outputs {encoder.sizes} do not match a deformation with {latent_dim} "
                f"latent dimensions (expected {expected})"
            )
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.latent_scale = latent_scale
        self.variational = variational
        self.mixed_precision = mixed_precision
        self.rotation_scale = float(rotation_scale)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device_type = images.device.type
        with torch.autocast(
            device_type,
            dtype=torch.bfloat16,
            enabled=self.mixed_precision and device_type == "cuda",
        ):
            return self.encoder(images)

    def forward(self, images: torch.Tensor, batch: dict, samples: int = 1) -> Estimates:
        outputs = self.encode(images)
        shifts = batch["shift"].float() + outputs["shifts"].float()
        mean = outputs["latents"].float() * self.latent_scale
        pose = Pose(batch["rotation"], shifts)
        if self.rotation_scale > 0:
            pose = compose_pose(pose, outputs["rotation"].float() * self.rotation_scale, None)
        if not self.variational:
            return Estimates(mean[:, None, :], mean, pose, {})
        # bounded so exp() neither overflows nor collapses the sample to the mean
        log_var = outputs["latent_log_var"].float().clamp(-LOG_VAR_BOUND, LOG_VAR_BOUND)
        if self.training:
            noise = torch.randn(
                mean.shape[0], samples, mean.shape[1], dtype=mean.dtype, device=mean.device
            )
            latents = mean[:, None, :] + noise * (0.5 * log_var).exp()[:, None, :]
        else:
            latents = mean[:, None, :]
        priors = {"latent_kl": gaussian_kl(mean, log_var)}
        return Estimates(latents, mean, pose, priors, log_var)

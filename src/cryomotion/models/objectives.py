"""Objectives: what a training phase minimises. They own the loss; the model knows none.

``ReconstructionObjective`` renders each image's estimate (one or several samples per
image) and compares it with the image under a likelihood from ``imaging.likelihood``,
reduced over samples by the mean or, IWAE-style, by log-mean-exp (seed 002, eq. 4); the
priors the inference reports (e.g. the VAE's KL) are added with their weights, and so is
the deformation's regularisation. ``RegressionObjective`` renders nothing: it fits the
inferred latents to per-particle targets (DeepHEMNMA's supervised stage).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from cryomotion.imaging.likelihood import IMAGE_LOSSES, fourier_l2, gaussian_log_likelihood
from cryomotion.models.variational import logmeanexp

REDUCTIONS = ("mean", "logmeanexp")
# Likelihoods computed from spectra (Parseval: no inverse FFT per sample), and the
# real-space likelihood each equals.
SPECTRAL_LIKELIHOODS = {"fourier_l2": "l2"}
# The negative Gaussian log-likelihood (AtomVAE, seed 002), from spectra in training.
GAUSSIAN = "gaussian"


class Loss(NamedTuple):
    """``total`` () to minimise; ``per_image`` (B,) data term, detached by callers that log
    it; ``terms`` () each, the weighted priors and regularisation; ``output`` what the model
    returned (for the trainer's per-particle updates)."""

    total: torch.Tensor
    per_image: torch.Tensor
    terms: dict[str, torch.Tensor]
    output: Any = None


def reduce_samples(per_sample: torch.Tensor, reduce: str) -> torch.Tensor:
    """Per-sample losses (B, S) -> per-image (B,): their mean, or −log mean exp(−loss)
    (the loss of the importance-weighted likelihood estimate; equal to the loss for S = 1)."""
    if reduce == "mean":
        return per_sample.mean(dim=1)
    if reduce == "logmeanexp":
        return -logmeanexp(-per_sample, dim=1)
    raise ValueError(f"reduction {reduce!r}: expected one of {', '.join(REDUCTIONS)}")


@dataclass(frozen=True)
class ReconstructionObjective:
    """Image likelihood of rendered estimates + weighted priors + the deformation's terms.

    likelihood : "l2" or "correlation" (``imaging.likelihood.IMAGE_LOSSES``), or
        "fourier_l2": the L2 loss computed from the rendered spectra (the same value, no
        inverse FFT per sample).
    samples : latent samples per image (a VAE draws that many; 1 for a point estimate).
    reduce : "mean" or "logmeanexp" over the samples.
    prior_weights : weight of each prior the inference reports, e.g. {"latent_kl": 1e-4}.
    pose_samples : None, or pose samples per conformation sample (AtomVAE): the inference
        then receives ``samples`` as (conformation samples, pose samples), with 0
        conformation samples in a phase that renders the rest points.
    noise_sigma : the "gaussian" likelihood's noise standard deviation per pixel, in the
        normalised units the images are compared in; 1 there by construction, as the
        intensity scale divides the images by their measured background noise σ
        (``models.intensity``).

    "gaussian" is −log N(y; ŷ, σ²) per image with its constants (computed from the rendered
    spectra by Parseval in training, in real space for ``image_loss``).
    """

    likelihood: str = "l2"
    samples: int = 1
    reduce: str = "mean"
    prior_weights: Mapping[str, float] = field(default_factory=dict)
    pose_samples: int | None = None
    noise_sigma: float = 1.0

    def __post_init__(self):
        names = [*IMAGE_LOSSES, *SPECTRAL_LIKELIHOODS, GAUSSIAN]
        if self.likelihood not in names:
            raise ValueError(f"likelihood {self.likelihood!r}: expected one of {', '.join(names)}")
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduction {self.reduce!r}: expected one of {REDUCTIONS}")
        if self.samples < 1:
            raise ValueError(f"samples {self.samples}: expected >= 1")

    @property
    def real_likelihood(self) -> str:
        """The real-space likelihood of the same value (for images rather than spectra):
        "gaussian" is "l2" up to its constants, the images being in units of their noise σ
        (``noise_sigma`` 1; the polish and pose steps compare images in real space)."""
        if self.likelihood == GAUSSIAN:
            return "l2"
        return SPECTRAL_LIKELIHOODS.get(self.likelihood, self.likelihood)

    def image_loss(self, rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """Rendered images (B, S, D, D) against measured (B, D, D) -> per-image losses (B,)."""
        if self.likelihood == GAUSSIAN:
            return self.spectral_loss(torch.fft.rfft2(rendered.to(torch.float32)), measured)
        loss = IMAGE_LOSSES[self.real_likelihood]
        per_sample = loss(rendered, measured[:, None].expand_as(rendered))
        return reduce_samples(per_sample, self.reduce)

    def spectral_loss(self, rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """Rendered spectra (B, S, D, D//2+1) against measured images (B, D, D) -> (B,)."""
        box = measured.shape[-1]
        measured_spectra = torch.fft.rfft2(measured.to(torch.float32))[:, None]
        if self.likelihood == GAUSSIAN:
            per_sample = -gaussian_log_likelihood(
                rendered, measured_spectra.expand_as(rendered), self.noise_sigma, box
            )
            return reduce_samples(per_sample, self.reduce)
        per_sample = fourier_l2(rendered, measured_spectra.expand_as(rendered), box)
        return reduce_samples(per_sample, self.reduce)

    def __call__(self, model, batch: dict, phase=None) -> Loss:
        """``model`` (a ``MotionModel``, or its DDP wrapper) on ``batch``."""
        use_conformation = True if phase is None else phase.use_conformation
        max_frequency = None if phase is None else phase.max_frequency
        spectral = self.likelihood in SPECTRAL_LIKELIHOODS or self.likelihood == GAUSSIAN
        samples = self.samples
        if self.pose_samples is not None:  # (conformation, pose) samples per image
            samples = (self.samples if use_conformation else 0, self.pose_samples)
        output = model(
            batch,
            samples=samples,
            use_conformation=use_conformation,
            max_frequency=max_frequency,
            spectra=spectral,
        )
        if spectral:
            per_image = self.spectral_loss(output.images, output.measured)
        else:
            per_image = self.image_loss(output.images, output.measured)
        total = per_image.mean()
        terms: dict[str, torch.Tensor] = {}
        for name, values in output.estimates.priors.items():
            weight = self.prior_weights.get(name, 1.0)
            terms[name] = weight * values.mean()
        terms.update(output.regularization)
        for term in terms.values():
            total = total + term
        return Loss(total, per_image, terms, output)


@dataclass(frozen=True)
class RegressionObjective:
    """Mean squared error of the inferred mean latents (B, d) against per-particle targets,
    in units of ``latent_scale`` (so every system's latents weigh alike). Renders nothing.

    The targets are ``batch["target_latents"]`` (B, d) when the batch has them, else the
    inference's ``targets(batch)`` -> (latents (B, d), pose (B,)), e.g. DeepHEMNMA's aligned
    values (``models.alignment.AlignmentRegressor``); a target pose adds the squared rotation
    error (the chordal distance ‖R − R*‖²_F / 2 ≈ θ², in units of ``rotation_scale`` radians)
    and the squared shift error (in units of ``shift_scale`` Å), times ``pose_weight``.
    """

    latent_scale: float | None = None  # None: the inference's ``latent_scale``
    rotation_scale: float = 1.0  # radians that weigh as one latent unit
    shift_scale: float = 1.0  # Å that weigh as one latent unit
    pose_weight: float = 1.0

    def __call__(self, model, batch: dict, phase=None) -> Loss:
        estimates = model(batch, render=False).estimates
        inference = getattr(model, "module", model).inference  # unwrapped from DDP
        target_pose = None
        targets = batch.get("target_latents")
        if targets is None:
            targets, target_pose = inference.targets(batch)
        scale = self.latent_scale or getattr(inference, "latent_scale", 1.0)
        mean = estimates.mean_latents
        error = (mean - targets.to(mean)) / scale
        per_image = error.square().mean(dim=1) if error.shape[1] else mean.new_zeros(len(mean))
        if target_pose is not None and self.pose_weight:
            rotations = estimates.pose.rotations
            chordal = (rotations - target_pose.rotations.to(rotations)).square().sum((-2, -1))
            rotation = 0.5 * chordal / self.rotation_scale**2
            shifts = estimates.pose.shifts
            shift = (shifts - target_pose.shifts.to(shifts)).square().sum(-1) / self.shift_scale**2
            pose = self.pose_weight * (rotation + shift)
            per_image = per_image + pose
        return Loss(per_image.mean(), per_image, {}, None)

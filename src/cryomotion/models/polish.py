"""Per-particle polish: refine what the inference proposes by gradient steps on each image.

An amortized encoder gives every particle its latents from one forward pass; the decoder
then says how well they explain the image. Polishing takes a few Adam steps per particle
on that image's own loss, starting from the encoder's estimate, jointly over

- the latents z (d),
- a correction to the pose it starts from: with a pose table (``--pose-mode refine``) a
  rotation vector and a shift, R = R_start · exp([Δω]×), t = t_start + Δt (the start is
  then the pose refined with the latents fixed), otherwise a shift alone (the encoder's
  shift head is the least certain part of a given pose),

against the current phase's image loss plus, for a VAE, the prior of its latents weighted
as in training (``weight · |z|² / 2``: the part of KL(q || N(0, I)) that depends on the
posterior mean), so the polished latents are the training objective's per-particle
optimum near the encoder's answer. The rows live in a throw-away ``ParticleState``
(``models.per_particle``): gradients go to them alone, nothing in the model changes.

Latent steps are in units of the deformation's ``latent_scale`` (for normal modes 1 Å RMS
of the atoms; for a VAE one prior standard deviation); rotation steps in radians, shifts Å.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from cryomotion.imaging.pose import Pose
from cryomotion.models.inference import Estimates
from cryomotion.models.intensity import fitted_scale
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.pose import compose_pose


@dataclass(frozen=True)
class PolishSettings:
    """``steps`` Adam steps per particle (0: off); step sizes ``latent_step`` (× the
    deformation's latent scale), ``rotation_step`` (degrees) and ``shift_step`` (Å),
    shrinking geometrically to ``final_rate`` of themselves by the last step;
    ``prior_weight``: the weight of |z|²/2 (None: the objective's ``latent_kl`` weight for
    a VAE, 0 otherwise)."""

    steps: int = 0
    latent_step: float = 0.05
    rotation_step: float = 0.5
    shift_step: float = 0.2
    final_rate: float = 0.1
    prior_weight: float | None = None

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"polish steps {self.steps}: expected >= 0")
        if min(self.latent_step, self.rotation_step, self.shift_step) < 0:
            raise ValueError("polish step sizes must be >= 0")
        if not 0 < self.final_rate <= 1:
            raise ValueError(f"polish final rate {self.final_rate}: expected in (0, 1]")


class Polished(NamedTuple):
    """``latents`` (B, d) and ``pose`` (B,) after polishing; ``loss`` (B,) the per-image
    loss (data term + prior) before and after."""

    latents: torch.Tensor
    pose: Pose
    loss_before: torch.Tensor
    loss_after: torch.Tensor


def polish(
    model,
    batch: dict,
    estimates: Estimates,
    pose: Pose,
    image_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    settings: PolishSettings,
    prior_weight: float = 0.0,
    measured: torch.Tensor | None = None,
) -> Polished:
    """Polish the ``estimates`` of ``batch`` on ``model`` (an unwrapped ``MotionModel``).

    ``image_loss``: rendered (B, D, D), measured (B, D, D) -> (B,) in normalised data
    units; ``prior_weight`` multiplies |z|²/2 (``settings.prior_weight`` overrides it when
    set). ``pose`` (B,) is where the pose starts. Returns the polished latents and pose,
    and the losses; a particle whose loss would rise keeps its start.
    """
    if settings.prior_weight is not None:
        prior_weight = settings.prior_weight
    if measured is None:
        measured = model.intensity.normalize(batch["image"])
    deformation = model.deformation
    d = deformation.latent_dim
    start = estimates.mean_latents.detach().float()
    batch_size = start.shape[0]
    given = Pose(pose.rotations.detach(), pose.shifts.detach())
    rotate = model.pose_table is not None
    rates = [settings.latent_step * deformation.latent_scale] * d
    rates += [math.radians(settings.rotation_step)] * 3 if rotate else []
    rates += [settings.shift_step] * 2
    pose_start = torch.zeros(batch_size, 5 if rotate else 2, device=start.device)
    ctf, groups = batch.get("ctf"), batch.get("optics_group")

    def pose_of(rows: torch.Tensor) -> Pose:
        if rotate:
            return compose_pose(given, rows[:, d : d + 3], rows[:, d + 3 :])
        return compose_pose(given, None, rows[:, d:])

    def loss(rows: torch.Tensor) -> torch.Tensor:
        latents = rows[:, :d]
        points = model.eckart_frame(deformation(latents).points)
        pose = pose_of(rows)
        rendered = model.renderer(points, pose.rotations, pose.shifts, ctf)
        rendered = model.intensity.scale_rendered(rendered, groups)
        if model.intensity.per_image:
            rendered = rendered * fitted_scale(rendered, measured)[:, None, None]
        total = image_loss(rendered, measured)
        if prior_weight:
            scaled = latents / deformation.latent_scale
            total = total + prior_weight * 0.5 * scaled.square().sum(dim=1)
        return total

    table = ParticleState(batch_size, rates).to(start.device)
    rows = torch.cat([start, pose_start], dim=1)
    table.values.copy_(rows)
    index = torch.arange(batch_size, device=start.device)
    with torch.no_grad():
        before = loss(rows)
    polished = table.optimize_rows(index, loss, settings.steps, final_rate=settings.final_rate)
    with torch.no_grad():
        after = loss(polished)
    # a particle whose loss rose (a step too far on a flat or noisy loss) keeps its start
    worse = after > before
    polished = torch.where(worse[:, None], rows, polished)
    after = torch.where(worse, before, after)
    return Polished(polished[:, :d], pose_of(polished), before, after)

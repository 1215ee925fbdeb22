"""Elastic alignment (HEMNMA) and the regressor trained on it (DeepHEMNMA, seed 004).

HEMNMA aligns every image elastically: for each particle it finds the normal-mode
amplitudes z (d, Å in the deformation's convention) and a correction of the rigid pose —
a rotation vector Δω (3, radians, applied in the model frame: R = R_file · exp([Δω]×)) and a
shift Δt (2, Å) — that minimise the misfit of the deformed, posed, CTF-modulated reference
to the image itself, starting from the particle file's pose. ``ElasticAlignment`` does that
for a batch of particles at once:

1. **starts**: amplitude zero and ± ``start_amplitude`` along each mode (2d + 1), or a
   ``grid`` of g^d amplitudes over ± ``start_amplitude`` (d ≤ 3); all rendered once at the
   file's pose, and the ``refine_starts`` best by misfit are kept;
2. **descent**: per-row Adam steps on (z, Δω, Δt) through ``ParticleState.optimize_rows``
   (the inner loop every per-particle table uses), step sizes in physical units (Å RMS of
   atomic displacement, degrees, Å) shrinking geometrically to ``final_rate`` of themselves;
3. **stopping rule**: every ``check_every`` steps each row's misfit is evaluated and its
   best values so far kept; a row whose misfit has not fallen by more than ``tolerance``
   (relative) below its best for ``patience`` checks in a row stops; none goes past
   ``steps``;
4. **selection**: the start with the lowest final misfit (for white Gaussian noise the
   highest likelihood) is the particle's alignment.

The misfit is the mean squared difference per pixel in the model's normalised units
(``models.intensity``): about 1 for a perfect fit to an image with white noise of unit
variance, 0 for a perfect fit to a noise-free one.

``AlignmentRegressor`` is DeepHEMNMA's inference: an image encoder (``models.encoder``, a
ResNet by default) regressing (z, Δω, Δt) from the image, trained on the aligned particles'
values, which it keeps per particle as buffers (``targets``); ``final_predictions`` writes
the aligned values for aligned particles and the regressed ones for the rest.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from cryomotion.imaging.likelihood import image_l2
from cryomotion.imaging.pose import Pose
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.inference import Estimates, Inference
from cryomotion.models.intensity import fitted_scale
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.pose import compose_pose

# columns of an alignment row after the d amplitudes: rotation vector (3), shift (2)
POSE_COLUMNS = 5


@dataclass(frozen=True)
class AlignmentSettings:
    """Elastic alignment (module docstring). Amplitudes in Å RMS of atomic displacement
    (amplitude / ``latent_scale``), rotations in degrees, shifts in Å."""

    steps: int = 120  # most gradient steps per particle
    check_every: int = 10  # steps between checks of the stopping rule
    tolerance: float = 1e-4  # a check gains if the misfit fell by more than this fraction
    patience: int = 2  # a start stops after this many checks in a row without a gain
    amplitude_step: float = 0.2  # Å RMS: Adam's step on the amplitudes
    rotation_step: float = 1.0  # degrees: its step on the rotation correction
    shift_step: float = 0.5  # Å: its step on the shift correction
    final_rate: float = 0.05  # the steps shrink to this fraction of themselves by ``steps``
    start_amplitude: float = 2.0  # Å RMS: the ± starts along each mode (or the grid's half-width)
    grid: int = 0  # >= 2 (and d <= 3): a grid of grid^d starts instead of the ± starts
    refine_starts: int = 2  # the best starts refined by gradient steps
    refine_pose: bool = True  # False: the file's pose stays fixed (--pose-mode given)
    # Gaussian priors on the pose correction (sd in degrees, Å; 0: flat), for images in
    # normalised units (noise variance 1): the descent then maximises the posterior
    rotation_prior: float = 0.0
    shift_prior: float = 0.0
    # each rendered image scaled by its least-squares factor against the image (as RELION's
    # per-image scale): the fit then does not depend on the intensity gain, which the
    # undeformed reference underestimates when the particles are strongly deformed
    fit_scale: bool = True

    def check(self) -> None:
        if self.steps < 0 or self.check_every < 1 or self.refine_starts < 1 or self.patience < 1:
            raise ValueError(
                "alignment: expected steps >= 0, check_every >= 1, refine_starts >= 1, "
                "patience >= 1"
            )
        if not 0 < self.final_rate <= 1:
            raise ValueError(f"alignment final_rate {self.final_rate}: expected in (0, 1]")


class Alignment(NamedTuple):
    """The alignment of B particles: ``values`` (B, d + 5) amplitudes (Å, the deformation's
    convention), rotation vector (radians), shift correction (Å); ``misfit`` (B,) its final
    image misfit; ``steps`` (B,) gradient steps taken by the chosen start."""

    values: torch.Tensor
    misfit: torch.Tensor
    steps: torch.Tensor


def alignment_starts(
    latent_dim: int, latent_scale: float, settings: AlignmentSettings
) -> torch.Tensor:
    """(S, d) starting amplitudes: zero and ± ``start_amplitude`` (Å RMS, times
    ``latent_scale``) along each mode, or a grid of ``grid`` values per mode for d ≤ 3."""
    reach = settings.start_amplitude * latent_scale
    if latent_dim == 0:
        return torch.zeros(1, 0)
    if settings.grid >= 2:
        if latent_dim > 3:
            raise ValueError(f"a grid of starts needs d <= 3 modes (got {latent_dim})")
        axis = np.linspace(-reach, reach, settings.grid)
        return torch.tensor(list(itertools.product(axis, repeat=latent_dim)), dtype=torch.float32)
    eye = torch.eye(latent_dim)
    return torch.cat([torch.zeros(1, latent_dim), reach * eye, -reach * eye])


class ElasticAlignment:
    """Batched multi-start elastic alignment of particles against a ``MotionModel``'s
    deformation, renderer and intensity scale (module docstring). Runs on the unwrapped
    model; gradients go to the alignment rows alone (``torch.autograd.grad``)."""

    def __init__(self, latent_dim: int, latent_scale: float, settings: AlignmentSettings):
        settings.check()
        self.latent_dim = latent_dim
        self.latent_scale = latent_scale
        self.settings = settings
        self.starts = alignment_starts(latent_dim, latent_scale, settings)
        pose_rates = (
            [math.radians(settings.rotation_step)] * 3 + [settings.shift_step] * 2
            if settings.refine_pose
            else [0.0] * POSE_COLUMNS
        )
        self.rates = torch.tensor(
            [settings.amplitude_step * latent_scale] * latent_dim + pose_rates
        )

    def prior(self, rows: torch.Tensor, box: int) -> torch.Tensor:
        """(M,) the pose priors' −log density in misfit units (2/D² of it: the misfit is a
        mean over D² pixels of squared residuals of unit-variance noise)."""
        d, total = self.latent_dim, rows.new_zeros(len(rows))
        if self.settings.rotation_prior > 0:
            sd = math.radians(self.settings.rotation_prior)
            total = total + rows[:, d : d + 3].square().sum(1) / sd**2
        if self.settings.shift_prior > 0:
            total = total + rows[:, d + 3 :].square().sum(1) / self.settings.shift_prior**2
        return total / box**2

    def misfit(self, model, rows: torch.Tensor, which: torch.Tensor, batch: dict, measured):
        """Per-row misfit (M,) of alignment rows (M, d + 5) for the particles ``which`` (M,)
        (positions in ``batch``), against the normalised images ``measured`` (B, D, D)."""
        d = self.latent_dim
        given = Pose(batch["rotation"], batch["shift"]).select(which)
        pose = compose_pose(given, rows[:, d : d + 3], rows[:, d + 3 :])
        points = model.deformation(rows[:, :d]).points
        ctf = batch.get("ctf")
        rendered = model.renderer(
            points, pose.rotations, pose.shifts, None if ctf is None else ctf[which]
        )
        groups = batch.get("optics_group")
        rendered = model.intensity.scale_rendered(
            rendered, None if groups is None else groups[which]
        )
        target = measured[which]
        if self.settings.fit_scale or model.intensity.per_image:
            rendered = rendered * fitted_scale(rendered, target)[:, None, None]
        return image_l2(rendered, target)

    @torch.no_grad()
    def align(self, model, batch: dict, measured: torch.Tensor | None = None) -> Alignment:
        """Align the particles of ``batch`` (``image``, ``rotation``, ``shift``, ``ctf``,
        optionally ``optics_group``) to ``model`` (a ``MotionModel``, unwrapped)."""
        settings = self.settings
        if measured is None:
            measured = model.intensity.normalize(batch["image"])
        device = measured.device
        n_images, box = measured.shape[0], measured.shape[-1]
        starts = self.starts.to(device)
        n_starts = starts.shape[0]
        # 1. every start at the file's pose, forward only
        rows = torch.cat([starts, starts.new_zeros(n_starts, POSE_COLUMNS)], dim=1)
        rows = rows.repeat(n_images, 1)  # (B·S, k), particle-major
        which = torch.arange(n_images, device=device).repeat_interleave(n_starts)
        screened = self.misfit(model, rows, which, batch, measured).reshape(n_images, n_starts)
        keep = min(settings.refine_starts, n_starts)
        best = screened.topk(keep, dim=1, largest=False).indices  # (B, K)
        chosen = (best + n_starts * torch.arange(n_images, device=device)[:, None]).reshape(-1)
        rows, which = rows[chosen], which[chosen]
        misfit = screened.reshape(-1)[chosen]
        # 2-3. gradient steps in rounds, each row stopping on its own; every row keeps the
        # best values seen at a check (Adam's steps can overshoot between checks)
        # a copy: the table's step sizes are changed in place below, ``self.rates`` never
        table = ParticleState(len(rows), self.rates.clone()).to(device)
        table.values.copy_(rows)
        best_values = rows.clone()
        stale = torch.zeros(len(rows), dtype=torch.long, device=device)
        active = torch.arange(len(rows), device=device)
        decay = settings.final_rate ** (1.0 / max(settings.steps - 1, 1))
        done = 0
        while done < settings.steps and len(active):
            steps = min(settings.check_every, settings.steps - done)
            table.learning_rates.copy_(self.rates.to(device) * decay**done)
            part = which[active]

            def loss(values: torch.Tensor, part=part) -> torch.Tensor:
                misfit = self.misfit(model, values, part, batch, measured)
                return misfit + self.prior(values, box)

            table.optimize_rows(active, loss, steps, final_rate=decay ** max(steps - 1, 0))
            done += steps
            values = table.values[active]
            now = self.misfit(model, values, part, batch, measured) + self.prior(values, box)
            previous = misfit[active]
            better = now < previous
            misfit[active] = torch.where(better, now, previous)
            best_values[active[better]] = values[better]
            gained = (previous - now) > settings.tolerance * previous.abs().clamp_min(1e-12)
            stale[active] = torch.where(gained, 0, stale[active] + 1)
            active = active[stale[active] < settings.patience]
        # 4. the best start of each particle (by posterior: misfit + prior), its misfit alone
        final = misfit.reshape(n_images, keep)
        pick = final.argmin(dim=1)
        rows_of = pick + keep * torch.arange(n_images, device=device)
        values = best_values[rows_of]
        final_misfit = self.misfit(model, values, which[rows_of], batch, measured)
        return Alignment(values, final_misfit, table.steps[rows_of])


class AlignmentRegressor(Inference):
    """DeepHEMNMA's inference: ``encoder`` (heads ``latents`` (d), and with ``refine_pose``
    ``rotation`` (3) and ``shifts`` (2)) regresses each particle's alignment from its image;
    the aligned particles' values are kept per particle (buffers ``aligned_values`` (N, d +
    5), ``aligned`` (N,) bool, ``misfit`` (N,), ``align_steps`` (N,)).

    ``forward`` always gives the regressor's estimate: latents = ``latents`` × ``latent_scale``,
    pose = the file's pose composed with the rotation vector ``rotation`` × ``rotation_scale``
    (radians) and the shift correction ``shifts`` (Å). ``targets`` gives the aligned values as
    latents and a pose; ``final_predictions`` puts them in place of the regressed ones.
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        latent_dim: int,
        latent_scale: float,
        n_particles: int,
        alignment: ElasticAlignment,
        rotation_scale: float = math.radians(1.0),
        mixed_precision: bool = False,
    ):
        super().__init__()
        refine_pose = alignment.settings.refine_pose
        expected = {"latents": latent_dim} | ({"rotation": 3, "shifts": 2} if refine_pose else {})
        if encoder.sizes != expected:
            raise ValueError(f"regressor outputs {encoder.sizes}, expected {expected}")
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.latent_scale = latent_scale
        self.rotation_scale = rotation_scale
        self.refine_pose = refine_pose
        self.alignment = alignment
        self.mixed_precision = mixed_precision
        width = latent_dim + POSE_COLUMNS
        self.register_buffer("aligned_values", torch.zeros(n_particles, width))
        self.register_buffer("aligned", torch.zeros(n_particles, dtype=torch.bool))
        self.register_buffer("misfit", torch.full((n_particles,), float("nan")))
        self.register_buffer("align_steps", torch.zeros(n_particles, dtype=torch.long))
        # the aligned pose as rendered: the file's composed with the aligned correction
        self.register_buffer("aligned_rotations", torch.eye(3).repeat(n_particles, 1, 1))
        self.register_buffer("aligned_shifts", torch.zeros(n_particles, 2))

    def per_particle_state(self) -> list[str]:
        return [
            "aligned_values",
            "aligned",
            "misfit",
            "align_steps",
            "aligned_rotations",
            "aligned_shifts",
        ]

    # -- the regressor ----------------------------------------------------------------
    def regress(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, D, D) -> regressed alignment rows (B, d + 5)."""
        device_type = images.device.type
        with torch.autocast(
            device_type,
            dtype=torch.bfloat16,
            enabled=self.mixed_precision and device_type == "cuda",
        ):
            outputs = self.encoder(images)
        latents = outputs["latents"].float() * self.latent_scale
        if not self.refine_pose:
            return torch.cat([latents, latents.new_zeros(len(latents), POSE_COLUMNS)], dim=1)
        rotation = outputs["rotation"].float() * self.rotation_scale
        return torch.cat([latents, rotation, outputs["shifts"].float()], dim=1)

    def estimates(self, rows: torch.Tensor, batch: dict) -> Estimates:
        """Alignment rows (B, d + 5) of the particles of ``batch`` as ``Estimates``."""
        d = self.latent_dim
        given = Pose(batch["rotation"], batch["shift"].to(rows.dtype))
        pose = compose_pose(given, rows[:, d : d + 3], rows[:, d + 3 :])
        latents = rows[:, :d]
        return Estimates(latents[:, None, :], latents, pose, {})

    def forward(self, images: torch.Tensor, batch: dict, samples: int = 1) -> Estimates:
        return self.estimates(self.regress(images), batch)

    # -- the aligned particles --------------------------------------------------------
    def targets(self, batch: dict) -> tuple[torch.Tensor, Pose]:
        """The aligned values of the particles ``batch["index"]``: latents (B, d), pose (B,)."""
        rows = self.aligned_values.index_select(0, batch["index"])
        estimates = self.estimates(rows, batch)
        return estimates.mean_latents, estimates.pose

    @torch.no_grad()
    def store(self, index: torch.Tensor, alignment: Alignment, pose: Pose) -> None:
        """Record the alignment of the particles ``index`` (B,) and the ``pose`` (B,) it
        renders them with."""
        index = index.to(self.aligned_values.device)
        self.aligned_rotations.index_copy_(0, index, pose.rotations.to(self.aligned_rotations))
        self.aligned_shifts.index_copy_(0, index, pose.shifts.to(self.aligned_shifts))
        self.aligned_values.index_copy_(0, index, alignment.values.to(self.aligned_values))
        self.misfit.index_copy_(0, index, alignment.misfit.to(self.misfit))
        self.align_steps.index_copy_(0, index, alignment.steps.to(self.align_steps))
        self.aligned.index_fill_(0, index, True)

    def align(self, model, batch: dict) -> Alignment:
        """Align the particles of ``batch`` against ``model`` and store the result."""
        alignment = self.alignment.align(model, batch)
        pose = self.estimates(alignment.values, batch).pose
        self.store(batch["index"], alignment, pose)
        return alignment

    def final_predictions(self, predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``Trainer.predict``'s arrays (the regressor's estimates) with the aligned
        particles' own values in their place, plus ``aligned`` (N,) bool, ``misfit`` (N,)
        (NaN where not aligned) and ``regressed_latents`` (N, d), the regressor's amplitudes
        for every particle (to compare with the aligned ones)."""
        index = torch.as_tensor(predictions["index"], device=self.aligned.device)
        aligned = self.aligned.index_select(0, index)
        rows = self.aligned_values.index_select(0, index)[aligned]
        out = dict(predictions)
        out["regressed_latents"] = predictions["latents"].copy()
        mask = aligned.cpu().numpy()
        if mask.any():
            chosen = index[aligned]
            for key, values in (
                ("latents", rows[:, : self.latent_dim]),
                ("rotations", self.aligned_rotations.index_select(0, chosen)),
                ("shifts", self.aligned_shifts.index_select(0, chosen)),
            ):
                column = out[key].copy()
                column[mask] = values.cpu().numpy()
                out[key] = column
        out["aligned"] = mask
        out["misfit"] = self.misfit.index_select(0, index).cpu().numpy()
        return out

"""Seed 004, DeepHEMNMA: elastic alignment of a subset, then a network for the rest.

HEMNMA aligns every image elastically (``models.alignment.ElasticAlignment``): the
amplitudes of d normal modes of the reference and a correction of the file's pose, fitted
to the image itself — accurate and slow. DeepHEMNMA aligns a random ``align_fraction`` of
the particles that way, trains a ResNet regressor on them (a ``validation_fraction`` held
out for early stopping) to predict the aligned amplitudes and pose corrections from the
image, and predicts the rest in one forward pass (``AlignmentRegressor``). With
``--align-fraction 1`` every particle is aligned: plain HEMNMA.

The deformation is the nma system's (``modes.npz`` in the run folder); the run also keeps
``alignment.npz`` (the aligned particles' values and misfits), so a resumed run does not
align again. ``--pose-mode refine`` aligns the pose too; ``given`` keeps the file's pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cryomotion.errors import InputError
from cryomotion.models.alignment import AlignmentRegressor, AlignmentSettings, ElasticAlignment
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.objectives import RegressionObjective
from cryomotion.models.pose import PoseMode
from cryomotion.systems.nma import NormalModeSettings, build_deformation, prepare
from cryomotion.systems.registry import AlignmentPlan, InferenceInputs, System, SystemFlag

DEFAULT_MODES = 3  # the seed's modes 7-9: the three lowest non-trivial ANM modes


@dataclass
class DeepHEMNMASettings(NormalModeSettings):
    """The normal modes (``NormalModeSettings``), the alignment and the regressor."""

    align_fraction: float = 0.1  # the share of all particles aligned elastically
    validation_fraction: float = 0.1  # of the aligned ones, held out for early stopping
    patience: int = 5  # epochs without a better validation loss before stopping
    align_batch: int = 64  # particles aligned at once
    align_steps: int = 120  # most gradient steps per particle
    align_check_every: int = 10  # steps between checks of the stopping rule
    align_tolerance: float = 1e-4  # a check gains if the misfit fell by more (relative)
    align_patience: int = 2  # a start stops after this many checks without a gain
    amplitude_step: float = 0.2  # Å RMS of atomic displacement per alignment step
    rotation_step: float = 1.0  # degrees per alignment step
    shift_step: float = 0.5  # Å per alignment step
    final_rate: float = 0.05  # alignment steps shrink to this fraction of themselves
    start_amplitude: float = 2.0  # Å RMS: starts at 0 and ± this along each mode
    start_grid: int = 0  # >= 2 (d <= 3): a grid of start_grid^d starts over ± start_amplitude
    refine_starts: int = 2  # the best starts (by misfit) refined by gradient steps
    # Gaussian priors on the pose correction (sd, degrees and Å; 0: flat, as HEMNMA): about
    # the consensus poses' error, so noise cannot pull a pose further than it plausibly is off
    rotation_prior: float = 0.0
    shift_prior: float = 0.0
    resnet_width: float = 0.25  # filters multiplier of the ResNet (64-512 filters at 1)
    resnet_blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # ResNet-18's
    rotation_unit: float = 3.0  # degrees of rotation error weighing as 1 Å RMS of amplitude


def alignment_settings(settings: DeepHEMNMASettings, refine_pose: bool) -> AlignmentSettings:
    return AlignmentSettings(
        steps=settings.align_steps,
        check_every=settings.align_check_every,
        tolerance=settings.align_tolerance,
        patience=settings.align_patience,
        amplitude_step=settings.amplitude_step,
        rotation_step=settings.rotation_step,
        shift_step=settings.shift_step,
        final_rate=settings.final_rate,
        start_amplitude=settings.start_amplitude,
        grid=settings.start_grid,
        refine_starts=settings.refine_starts,
        refine_pose=refine_pose,
        rotation_prior=settings.rotation_prior,
        shift_prior=settings.shift_prior,
    )


def build_inference(inputs: InferenceInputs) -> AlignmentRegressor:
    """The ResNet regressor with the alignment table of every particle."""
    config, settings = inputs.config, inputs.config.deformation
    deformation = inputs.deformation
    refine_pose = PoseMode.parse(config.model.pose_mode) is PoseMode.REFINE
    d = deformation.latent_dim
    heads = {"latents": d} | ({"rotation": 3, "shifts": 2} if refine_pose else {})
    encoder = ImageEncoder(
        inputs.box,
        heads,
        width=settings.resnet_width,
        norm=config.model.norm,
        hidden=tuple(config.model.hidden),
        trunk="resnet",
        resnet_blocks=tuple(settings.resnet_blocks),
    )
    try:
        alignment = ElasticAlignment(
            d, deformation.latent_scale, alignment_settings(settings, refine_pose)
        )
    except ValueError as err:
        raise InputError(f"deephemnma settings: {err}") from None
    return AlignmentRegressor(
        encoder,
        d,
        deformation.latent_scale,
        inputs.n_particles,
        alignment,
        rotation_scale=math.radians(settings.rotation_unit),
        mixed_precision=config.training.mixed_precision,
    )


def alignment_plan(settings: DeepHEMNMASettings, n_particles: int, seed: int) -> AlignmentPlan:
    """A seeded random ``align_fraction`` of the particles to align; of those, a
    ``validation_fraction`` held out from the regressor's training."""
    if not 0 < settings.align_fraction <= 1:
        raise InputError(f"--align-fraction {settings.align_fraction}: expected in (0, 1]")
    if not 0 <= settings.validation_fraction < 1:
        raise InputError(f"validation fraction {settings.validation_fraction}: expected in [0, 1)")
    if settings.patience < 1 or settings.align_batch < 1:
        raise InputError("deephemnma settings: expected patience >= 1 and align_batch >= 1")
    order = np.random.default_rng(seed + 4).permutation(n_particles)
    n_aligned = max(1, round(settings.align_fraction * n_particles))
    aligned = order[:n_aligned]
    n_validation = round(settings.validation_fraction * n_aligned)
    if settings.validation_fraction > 0 and n_aligned >= 2:
        n_validation = min(max(n_validation, 1), n_aligned - 1)
    return AlignmentPlan(
        aligned=np.sort(aligned),
        train=np.sort(aligned[n_validation:]),
        validation=np.sort(aligned[:n_validation]),
        patience=settings.patience,
        batch_size=settings.align_batch,
    )


def objective(settings: DeepHEMNMASettings) -> RegressionObjective:
    """Regression to the aligned amplitudes (in Å RMS) and pose corrections."""
    return RegressionObjective(rotation_scale=math.radians(settings.rotation_unit))


SYSTEM = System(
    name="deephemnma",
    summary="DeepHEMNMA (seed 004): elastic alignment of a subset, a ResNet regressor for the rest",
    settings_class=DeepHEMNMASettings,
    prepare=prepare,
    build_deformation=build_deformation,
    default_latent_dim=lambda settings: DEFAULT_MODES,
    objective=objective,
    flags=(
        SystemFlag("--modes", "model.latent_dim", "number of normal modes d (default 3)", 0),
        SystemFlag(
            "--align-fraction",
            "deformation.align_fraction",
            "share of the particles aligned elastically (default 0.1; 1: plain HEMNMA)",
            0.0,
            float,
        ),
    ),
    build_inference=build_inference,
    pose_modes=("given", "refine"),
    alignment=alignment_plan,
)

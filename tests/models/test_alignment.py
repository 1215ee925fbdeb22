"""Elastic alignment (HEMNMA): recovery of known amplitudes and a perturbed pose from
noise-free images, its starts, its stopping rule; the regressor's targets and outputs."""

import math

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.geometry.rotations import geodesic_angle, rotvec_to_matrix
from cryomotion.imaging.pose import Pose
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.alignment import (
    AlignmentRegressor,
    AlignmentSettings,
    ElasticAlignment,
    alignment_starts,
)
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import RegressionObjective
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model

BOX, PIXEL_SIZE = 32, 3.0
CTF = torch.tensor([[5000.0, 5000.0, 0, 300, 2.7, 0.1, 0, 0]])


@pytest.fixture(scope="module")
def adk(adk_open_path):
    model = read_model(adk_open_path)
    model = model.with_coords(model.coords - model.coords.mean(0) + (BOX // 2) * PIXEL_SIZE)
    modes = compute_normal_modes(model, n_modes=3)
    return model, modes.vectors


def motion_model(adk, alignment: ElasticAlignment | None = None, n_particles: int = 8):
    model, modes = adk
    deformation = NormalModeDeformation(model.coords, modes)
    if alignment is None:
        alignment = ElasticAlignment(3, deformation.latent_scale, AlignmentSettings())
    torch.manual_seed(0)
    encoder = ImageEncoder(
        BOX, {"latents": 3, "rotation": 3, "shifts": 2}, width=0.125, trunk="resnet"
    )
    inference = AlignmentRegressor(encoder, 3, deformation.latent_scale, n_particles, alignment)
    renderer = AtomRenderer.from_model(model, BOX, PIXEL_SIZE)
    # noise-free images in the renderer's units: no intensity scale to fit
    return MotionModel(inference, deformation, renderer, IntensityScale(mode="none"))


def particles(motion, n, seed=0):
    """Noise-free images of known amplitudes (±2.5 Å RMS per mode) at a true pose, and a
    file pose off by 2° of rotation and 1 Å of shift."""
    rng = np.random.default_rng(seed)
    scale = motion.deformation.latent_scale
    amplitudes = torch.tensor(rng.uniform(-2.5, 2.5, size=(n, 3)) * scale, dtype=torch.float32)
    truth = torch.as_tensor(uniform_rotations(n, rng), dtype=torch.float32)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    error = torch.tensor(axis * math.radians(2.0), dtype=torch.float32)
    file_rotations = truth @ rotvec_to_matrix(error)  # the file's pose is off by 2°
    shifts = torch.tensor(rng.normal(0, 2.0, size=(n, 2)), dtype=torch.float32)
    direction = rng.normal(size=(n, 2))
    shift_error = direction / np.linalg.norm(direction, axis=1, keepdims=True)  # 1 Å
    with torch.no_grad():
        points = motion.deformation(amplitudes).points
        images = motion.renderer(points, truth, shifts, CTF.expand(n, 8))
    batch = {
        "image": images,
        "rotation": file_rotations,
        "shift": shifts + torch.tensor(shift_error, dtype=torch.float32),
        "ctf": CTF.expand(n, 8),
        "index": torch.arange(n),
    }
    return batch, amplitudes, Pose(truth, shifts)


def test_starts_are_zero_and_plus_minus_along_each_mode_or_a_grid():
    settings = AlignmentSettings(start_amplitude=2.0)
    starts = alignment_starts(3, 10.0, settings)
    assert starts.shape == (7, 3)
    assert torch.equal(starts[0], torch.zeros(3))
    torch.testing.assert_close(starts[1:4], 20.0 * torch.eye(3))
    torch.testing.assert_close(starts[4:], -20.0 * torch.eye(3))
    grid = alignment_starts(2, 1.0, AlignmentSettings(start_amplitude=1.0, grid=3))
    assert grid.shape == (9, 2) and set(grid.flatten().tolist()) == {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="d <= 3"):
        alignment_starts(4, 1.0, AlignmentSettings(grid=3))


def test_noise_free_alignment_recovers_amplitudes_and_the_perturbed_pose(adk):
    """From a file pose off by 2° and 1 Å and amplitudes up to 2.5 Å RMS per mode, a grid
    of 27 starts and one refined: amplitudes within 0.06 Å RMS of atomic displacement
    (measured max 0.018), rotations within 0.3° (0.12°), shifts within 0.15 Å; the misfit
    falls to under 1 % of the file pose's."""
    settings = AlignmentSettings(grid=3, start_amplitude=2.0, refine_starts=1)
    motion = motion_model(adk)
    motion.inference.alignment = ElasticAlignment(3, motion.deformation.latent_scale, settings)
    batch, amplitudes, truth = particles(motion, 8)
    result = motion.inference.align(motion, batch)
    scale = motion.deformation.latent_scale
    amplitude_error = (result.values[:, :3] - amplitudes).abs() / scale  # Å RMS per mode
    pose = motion.inference.estimates(result.values, batch).pose
    rotation_error = torch.rad2deg(geodesic_angle(pose.rotations, truth.rotations))
    shift_error = (pose.shifts - truth.shifts).norm(dim=1)
    print(
        f"amplitude error (Å RMS) max {amplitude_error.max():.3f}, rotation error max "
        f"{rotation_error.max():.3f}°, shift error max {shift_error.max():.3f} Å"
    )
    assert amplitude_error.max() < 0.06
    assert rotation_error.max() < 0.3
    assert shift_error.max() < 0.15
    with torch.no_grad():
        start = motion.inference.alignment.misfit(
            motion, torch.zeros(8, 8), torch.arange(8), batch, batch["image"]
        )
    assert (result.misfit < 0.01 * start).all()
    # stored for the particles, with the pose they render with
    assert motion.inference.aligned.all()
    torch.testing.assert_close(motion.inference.misfit, result.misfit)
    torch.testing.assert_close(motion.inference.aligned_rotations, pose.rotations)


def test_alignment_does_not_depend_on_the_batches_before(adk):
    """Aligning one batch leaves the alignment unchanged for the next (its step sizes are
    its own): the same particles give the same values after another batch as fresh."""
    settings = AlignmentSettings(steps=20, check_every=10, refine_starts=1)
    motion = motion_model(adk)
    first, _, _ = particles(motion, 2, seed=1)
    second, _, _ = particles(motion, 2, seed=2)
    fresh = ElasticAlignment(3, motion.deformation.latent_scale, settings).align(motion, second)
    alignment = ElasticAlignment(3, motion.deformation.latent_scale, settings)
    alignment.align(motion, first)
    after = alignment.align(motion, second)
    torch.testing.assert_close(after.values, fresh.values)
    torch.testing.assert_close(alignment.rates, fresh_rates(motion, settings))


def fresh_rates(motion, settings):
    return ElasticAlignment(3, motion.deformation.latent_scale, settings).rates


def test_given_pose_mode_keeps_the_file_pose(adk):
    settings = AlignmentSettings(steps=20, refine_pose=False)
    motion = motion_model(adk)
    alignment = ElasticAlignment(3, motion.deformation.latent_scale, settings)
    batch, _, _ = particles(motion, 4)
    result = alignment.align(motion, batch)
    assert torch.equal(result.values[:, 3:], torch.zeros(4, 5))


def test_stopping_rule_stops_converged_particles_early(adk):
    """Images of the reference at the file's pose: the zero start fits at once, so every
    particle stops after ``patience`` = 2 checks without a gain (10 steps), not 60."""
    settings = AlignmentSettings(steps=60, check_every=5, refine_starts=1, tolerance=1e-3)
    motion = motion_model(adk)
    alignment = ElasticAlignment(3, motion.deformation.latent_scale, settings)
    batch, _, _ = particles(motion, 4)
    with torch.no_grad():
        points = motion.deformation.rest().points
        batch["image"] = motion.renderer(points, batch["rotation"], batch["shift"], batch["ctf"])
    result = alignment.align(motion, batch)
    assert (result.steps == 10).all()
    torch.testing.assert_close(result.values, torch.zeros(4, 8))  # the best: the start


def test_regressor_targets_feed_the_regression_objective(adk):
    """With the aligned values as targets the regression loss is the squared error of the
    regressor's estimates; a fresh regressor (zero outputs) has exactly the loss of the
    targets' own size."""
    motion = motion_model(adk, n_particles=4)
    inference = motion.inference
    scale = motion.deformation.latent_scale
    values = torch.zeros(4, 8)
    values[:, :3] = torch.tensor([[1.0, -2.0, 0.5]]) * scale  # Å RMS 1, 2, 0.5
    batch, _, _ = particles(motion, 4)
    from cryomotion.models.alignment import Alignment

    pose = inference.estimates(values, batch).pose
    inference.store(batch["index"], Alignment(values, torch.zeros(4), torch.zeros(4)), pose)
    motion.eval()
    loss = RegressionObjective()(motion, batch)
    # a fresh head outputs zero: the error is the targets' amplitudes, pose error zero
    expected = (1.0 + 4.0 + 0.25) / 3
    torch.testing.assert_close(loss.per_image, torch.full((4,), expected), rtol=1e-5, atol=1e-5)

"""Per-particle tables: the inner Adam on rows, and pose refinement through the model."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.geometry.rotations import geodesic_angle
from cryomotion.imaging.likelihood import image_l2
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.per_particle import ParticleState
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model

BOX, PIXEL_SIZE, N = 32, 3.0, 24


def test_rows_converge_to_the_minimum_of_a_quadratic_and_others_stay():
    state = ParticleState(10, [0.05, 0.05])
    target = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    index = torch.tensor([3, 7])
    rows = state.optimize_rows(index, lambda r: (r - target).square().sum(1), steps=300)
    torch.testing.assert_close(rows, target, atol=0.06, rtol=0)
    torch.testing.assert_close(state.values[index], rows)
    assert state.values[[0, 1, 2, 4, 5, 6, 8, 9]].abs().sum() == 0
    assert state.steps[3] == 300 and state.steps[0] == 0
    # the shrinking step settles much closer
    settled = state.optimize_rows(
        index, lambda r: (r - target).square().sum(1), steps=50, write=False, final_rate=0.01
    )
    assert (settled - target).abs().max() < 0.01
    torch.testing.assert_close(state.values[index], rows)  # write=False left the table


def test_rows_depend_only_on_their_own_loss():
    state = ParticleState(4, [0.1])
    index = torch.arange(4)
    weights = torch.tensor([1.0, 10.0, 100.0, 1000.0])  # Adam: the same steps at any scale
    rows = state.optimize_rows(index, lambda r: weights * (r[:, 0] - 1).square(), steps=5)
    torch.testing.assert_close(rows[:, 0], rows[0, 0].expand(4))


def test_pose_refinement_recovers_perturbed_rotations_and_shifts(adk_open_path):
    """Noise-free 32-px images of the reference; the file's poses off by 3° and 1.5 Å."""
    torch.manual_seed(0)
    reference = read_model(adk_open_path)
    reference = reference.with_coords(
        reference.coords - reference.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    )
    renderer = AtomRenderer.from_model(reference, BOX, PIXEL_SIZE)
    rng = np.random.default_rng(0)
    rotations = torch.tensor(uniform_rotations(N, rng), dtype=torch.float32)
    axes = rng.normal(size=(N, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    delta = Rotation.from_rotvec(np.deg2rad(3) * axes).as_matrix()
    delta = torch.tensor(delta, dtype=torch.float32)
    shift_error = torch.tensor(rng.normal(size=(N, 2)) * 1.06, dtype=torch.float32)
    ctf = torch.tensor([[10000.0, 10000.0, 0, 300, 2.7, 0.1, 0, 0]]).expand(N, 8)
    coords = torch.tensor(reference.coords, dtype=torch.float32)
    with torch.no_grad():
        images = renderer(coords, rotations, torch.zeros(N, 2), ctf)
    model = MotionModel.with_encoder(
        ImageEncoder(BOX, {"shifts": 2, "latents": 0}, width=0.25, norm="group"),
        NormalModeDeformation(reference.coords, np.zeros((0, reference.n_atoms, 3))),
        renderer,
        pose_table=ParticleState(N, [np.deg2rad(0.5)] * 3 + [0.2] * 2),
    ).eval()
    batch = {
        "image": images, "rotation": rotations @ delta, "shift": shift_error, "ctf": ctf,
        "index": torch.arange(N),
    }  # fmt: skip
    with torch.no_grad():
        estimates = model(batch, render=False).estimates
    for _ in range(4):
        pose = model.refine_poses(batch, estimates, image_l2, steps=15)
    pose = model.refine_poses(batch, estimates, image_l2, 20, write=False, final_rate=0.1)
    angles = torch.rad2deg(geodesic_angle(pose.rotations, rotations))
    shifts = pose.shifts.norm(dim=1)
    print(f"median error {angles.median():.2f}° {shifts.median():.2f} Å")
    assert angles.median() < 0.5 and shifts.median() < 0.2
    # the table holds what the written steps found: the model renders with it
    with torch.no_grad():
        table_pose = model(batch, render=False).pose
    assert torch.rad2deg(geodesic_angle(table_pose.rotations, rotations)).median() < 1.0

"""The auto-decoder's inner loop recovers each particle's latent under a known flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryomotion.data.poses import euler_to_matrix
from cryomotion.deform.flow_field import FlowFieldDeformation
from cryomotion.deform.mesh import build_mesh
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.latent_table import LatentTable
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.schedule import Phase
from cryomotion.systems.flex import canonical_grid

VOXEL, BOX, PIXEL = 2.0, 24, 2.0


def dumbbell() -> np.ndarray:
    """Two Gaussian blobs of different sizes along x, [z, y, x], centred in a 48 Å box."""
    k, j, i = np.meshgrid(*(np.arange(BOX),) * 3, indexing="ij")
    xyz = np.stack([i, j, k], -1) * VOXEL
    big = np.exp(-((xyz - [16.0, 24.0, 24.0]) ** 2).sum(-1) / (2 * 4.5**2))
    small = 0.8 * np.exp(-((xyz - [33.0, 24.0, 24.0]) ** 2).sum(-1) / (2 * 3.5**2))
    return big + small


def known_flow_model(n_particles: int) -> tuple[MotionModel, LatentTable]:
    """A flex model whose flow is linear in z: z_1 moves the small blob along y, z_2 along z
    (4 Å per unit), the big blob stays."""
    density = dumbbell()
    points, amplitudes = canonical_grid(density, VOXEL, np.zeros(3), 2.0, 0.1)
    mesh = build_mesh(density, VOXEL, (0, 0, 0), threshold=0.1, spacing=6.0)
    deformation = FlowFieldDeformation(
        mesh, points, amplitudes, 1.0, points, latent_dim=2, hidden=(), flow_scale=1.0
    )
    moving = torch.as_tensor(mesh.vertices[:, 0] > 26.0, dtype=torch.float32)
    weight = torch.zeros(mesh.n_vertices, 3, 2)
    weight[:, 1, 0] = 4.0 * moving
    weight[:, 2, 1] = 4.0 * moving
    with torch.no_grad():
        deformation.generator.output.weight.copy_(weight.reshape(-1, 2))
    renderer = AtomRenderer(deformation.scatterers(), 32, PIXEL, rotation_center=[24.0] * 3)
    table = LatentTable(n_particles, 2, inner_lr=0.1, predict_steps=60, noise_std=0.0)
    model = MotionModel(table, deformation, renderer, IntensityScale(mode="none"))
    return model, table


def test_inner_loop_recovers_the_latents_of_a_known_flow():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 24
    model, table = known_flow_model(n)
    truth = torch.as_tensor(rng.uniform(-1.2, 1.2, size=(n, 2)), dtype=torch.float32)
    # views within ~30° of the x axis: the blob's motion (y, z) lies in the image plane
    # (a motion along the view is invisible in a single image, whatever the method)
    angles = rng.uniform(-180, 180, size=(400, 3))
    candidates = euler_to_matrix(angles[:, 0], angles[:, 1] / 2 + 90, angles[:, 2])
    candidates = candidates[np.abs(candidates[:, 2, 0]) > 0.87][:n]
    rotations = torch.as_tensor(candidates, dtype=torch.float32)
    shifts = torch.zeros(n, 2)
    with torch.no_grad():
        deformed = model.deformation(truth)
        images = model.renderer(deformed.points, rotations, shifts, amplitudes=deformed.amplitudes)
    batch = {"image": images, "rotation": rotations, "shift": shifts, "index": torch.arange(n)}
    model.eval()
    table.infer(model, batch, Phase("flow", 1, None, ("flow", "latents")), predict=True)
    recovered = table.table.values
    error = (recovered - truth).abs()
    # the latent moves the blob by 4 Å per unit: 0.05 is 0.2 Å, a tenth of a pixel
    assert float(error.max()) < 0.05, error
    # a phase that does not train the latents leaves them fixed
    before = table.table.values.clone()
    table.infer(model, batch, Phase("fixed_latents", 1, None, ("flow", "canonical")))
    assert torch.equal(before, table.table.values)


def test_noise_is_injected_in_training_only_and_the_prior_is_half_the_squared_norm():
    table = LatentTable(5, 3, noise_std=0.5, init=np.ones((5, 3)))
    batch = {"rotation": torch.eye(3).expand(2, 3, 3), "shift": torch.zeros(2, 2),
             "index": torch.tensor([1, 3])}  # fmt: skip
    table.train()
    estimates = table(torch.zeros(2, 4, 4), batch, samples=8)
    assert estimates.latents.shape == (2, 8, 3)
    assert float((estimates.latents - 1).std()) == pytest.approx(0.5, rel=0.35)
    np.testing.assert_allclose(estimates.priors["latent_prior"].numpy(), [1.5, 1.5])
    table.eval()
    assert torch.equal(table(torch.zeros(2, 4, 4), batch).latents, torch.ones(2, 1, 3))

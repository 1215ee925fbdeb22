"""Full-batch L-BFGS of the canonical density under a frozen flow (3DFlex half maps)."""

from __future__ import annotations

import numpy as np
import torch

from cryomotion.analysis.flex_maps import pseudo_atom_map
from cryomotion.analysis.flexible_reconstruction import fit_half, masked_fsc
from cryomotion.data.poses import euler_to_matrix
from cryomotion.deform.flow_field import FlowFieldDeformation
from cryomotion.deform.mesh import build_mesh, soft_mask
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.latent_table import LatentTable
from cryomotion.models.motion_model import MotionModel
from cryomotion.systems.flex import canonical_grid

VOXEL, BOX = 2.0, 24


def blobs() -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(BOX),) * 3, indexing="ij")
    xyz = np.stack([i, j, k], -1) * VOXEL
    big = np.exp(-((xyz - [17.0, 24.0, 24.0]) ** 2).sum(-1) / (2 * 4.0**2))
    small = 0.8 * np.exp(-((xyz - [32.0, 22.0, 26.0]) ** 2).sum(-1) / (2 * 3.0**2))
    return big + small


def test_lbfgs_from_zero_recovers_the_canonical_density_under_a_known_flow():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    density = blobs()
    points, amplitudes = canonical_grid(density, VOXEL, np.zeros(3), 3.0, 0.1)
    mesh = build_mesh(density, VOXEL, (0, 0, 0), threshold=0.1, spacing=6.0)
    truth = FlowFieldDeformation(mesh, points, amplitudes, 1.5, points, 1, hidden=(8,))
    with torch.no_grad():
        truth.generator.output.weight.mul_(40)  # a random flow of a few Å
    n = 24
    latents = rng.normal(size=(n, 1)).astype(np.float32) * 2
    angles = rng.uniform(-180, 180, size=(n, 3))
    rotations = torch.as_tensor(euler_to_matrix(angles[:, 0], angles[:, 1] / 2 + 90, angles[:, 2]))
    renderer = AtomRenderer(truth.scatterers(), 32, VOXEL, rotation_center=[24.0] * 3)
    with torch.no_grad():
        deformed = truth(torch.as_tensor(latents))
        images = renderer(deformed.points, rotations.float(), torch.zeros(n, 2),
                          amplitudes=deformed.amplitudes)  # fmt: skip
    assert float(deformed.points.sub(truth.reference).norm(dim=-1).max()) > 0.5  # it moves
    dataset = [
        {"image": images[i], "rotation": rotations[i].float(), "shift": torch.zeros(2),
         "index": torch.tensor(i)}
        for i in range(n)
    ]  # fmt: skip
    fitted = truth.with_canonical(points, np.zeros(len(points)), 1.5)
    fitted.generator.requires_grad_(False)
    table = LatentTable(n, 1, noise_std=0.0, init=latents)
    model = MotionModel(table, fitted, renderer, IntensityScale(mode="none")).eval()
    signal = float(images.square().mean())
    recovered, loss = fit_half(model, dataset, np.arange(n), 25, 24, "cpu", progress=False)
    assert loss < 1e-3 * signal
    grid = (BOX, VOXEL, np.zeros(3))
    expected = pseudo_atom_map(truth, points, grid)
    got = pseudo_atom_map(fitted, points, grid)
    mask = soft_mask(density > 0.1)
    frequency, fsc = masked_fsc(got, expected, mask, VOXEL)
    low = (frequency > 0) & (frequency < 0.2)  # to 5 Å (shell 0, the mean, is taken out)
    assert fsc[low].min() > 0.95
    np.testing.assert_allclose(recovered.sum(), amplitudes.sum(), rtol=0.05)  # mass

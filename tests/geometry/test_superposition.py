"""Kabsch superposition against scipy and known rigid motions."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryomotion.geometry.superposition import kabsch, superpose_onto


def test_a_rigidly_moved_model_superposes_exactly():
    rng = np.random.default_rng(0)
    reference = torch.tensor(rng.normal(0, 10, (50, 3)))
    rotations = torch.tensor(Rotation.random(4, random_state=1).as_matrix())
    shifts = torch.tensor(rng.normal(0, 5, (4, 3)))
    moved = reference @ rotations.transpose(-1, -2) + shifts[:, None]
    rotation, translation = kabsch(moved, reference)
    torch.testing.assert_close(rotation, rotations.transpose(-1, -2), atol=1e-10, rtol=0)
    torch.testing.assert_close(superpose_onto(moved, reference), reference.expand(4, -1, -1))
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(4, dtype=torch.float64))


def test_against_scipy_on_a_noisy_copy_and_a_mirror_image():
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 10, (40, 3))
    noisy = reference @ Rotation.random(random_state=3).as_matrix().T + rng.normal(0, 1, (40, 3))
    expected, _ = Rotation.align_vectors(reference - reference.mean(0), noisy - noisy.mean(0))
    rotation, _ = kabsch(torch.tensor(noisy), torch.tensor(reference))
    np.testing.assert_allclose(rotation.numpy(), expected.as_matrix(), atol=1e-10)
    mirrored = torch.tensor(reference * np.array([1.0, 1.0, -1.0]))
    rotation, _ = kabsch(mirrored, torch.tensor(reference))
    assert abs(float(torch.linalg.det(rotation)) - 1) < 1e-10  # a rotation, never a reflection


def test_gradients_are_finite():
    rng = np.random.default_rng(4)
    reference = torch.tensor(rng.normal(0, 10, (30, 3)))
    points = (reference + 0.5 * torch.tensor(rng.normal(size=(2, 30, 3)))).requires_grad_(True)
    superpose_onto(points, reference).square().sum().backward()
    assert torch.isfinite(points.grad).all()
    assert torch.autograd.gradcheck(
        lambda p: superpose_onto(p, reference), (points.detach().clone().requires_grad_(True),)
    )

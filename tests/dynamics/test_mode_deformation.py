"""X(z) = X0 + U z as a batched torch operation, on every available device."""

import numpy as np
import pytest
import torch

from cryomotion.dynamics.mode_deformation import deform_along_modes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_matches_numpy(device):
    rng = np.random.default_rng(0)
    coords, vectors = rng.normal(size=(50, 3)), rng.normal(size=(4, 50, 3))
    amplitudes = rng.normal(size=(6, 4))
    found = deform_along_modes(
        torch.tensor(coords, device=device),
        torch.tensor(vectors, device=device),
        torch.tensor(amplitudes, device=device),
    )
    expected = coords + np.einsum("bd,dac->bac", amplitudes, vectors)
    assert found.shape == (6, 50, 3) and found.device.type == device
    np.testing.assert_allclose(found.cpu().numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_no_modes_returns_the_reference(device):
    coords = torch.randn(10, 3, device=device)
    found = deform_along_modes(coords, torch.zeros(0, 10, 3), torch.zeros(3, 0))
    assert found.shape == (3, 10, 3)
    assert torch.equal(found, coords.expand(3, 10, 3))


def test_gradients():
    coords = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    vectors = torch.randn(3, 7, 3, dtype=torch.float64, requires_grad=True)
    amplitudes = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(deform_along_modes, (coords, vectors, amplitudes))


def test_dtype_follows_coords_and_shapes_are_checked():
    coords = torch.zeros(5, 3, dtype=torch.float32)
    found = deform_along_modes(coords, torch.ones(2, 5, 3, dtype=torch.float64), torch.ones(4, 2))
    assert found.dtype == torch.float32
    np.testing.assert_allclose(found.numpy(), 2.0)
    with pytest.raises(ValueError, match="amplitudes"):
        deform_along_modes(coords, torch.ones(2, 5, 3), torch.ones(4, 3))
    with pytest.raises(ValueError, match="vectors"):
        deform_along_modes(coords, torch.ones(2, 6, 3), torch.ones(4, 2))

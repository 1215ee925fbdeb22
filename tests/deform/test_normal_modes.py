"""The normal-mode deformation against NormalModes.conformations and its unit convention."""

import numpy as np
import pytest
import torch

from cryomotion.deform.base import Deformation
from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.structure.io import read_model


@pytest.fixture(scope="module")
def adk_modes(adk_open_path):
    model = read_model(adk_open_path)
    return model, compute_normal_modes(model, n_modes=4)


def test_matches_numpy_conformations(adk_modes):
    model, modes = adk_modes
    deformation = NormalModeDeformation(model.coords, modes.vectors)
    amplitudes = np.random.default_rng(0).normal(0, 30, size=(5, 4))
    coords = deformation(torch.as_tensor(amplitudes, dtype=torch.float32)).coords
    expected = modes.conformations(amplitudes)
    assert isinstance(deformation, Deformation)
    assert coords.shape == (5, model.n_atoms, 3)
    np.testing.assert_allclose(coords.numpy(), expected, atol=1e-3)


def test_latent_scale_is_one_angstrom_rms(adk_modes):
    model, modes = adk_modes
    deformation = NormalModeDeformation(model.coords, modes.vectors)
    amplitudes = torch.zeros(1, 4)
    amplitudes[0, 2] = deformation.latent_scale
    displacement = deformation(amplitudes).coords[0].numpy() - model.coords
    rms = np.sqrt((displacement**2).sum(axis=1).mean())
    assert rms == pytest.approx(1.0, rel=1e-4)


def test_zero_modes_is_the_rigid_reference(adk_modes):
    model, _ = adk_modes
    deformation = NormalModeDeformation(model.coords, np.zeros((0, model.n_atoms, 3)))
    assert deformation.latent_dim == 0
    output = deformation(torch.zeros(3, 0))
    assert output.coords.shape == (3, model.n_atoms, 3)
    np.testing.assert_allclose(output.coords[1].numpy(), model.coords, atol=1e-4)
    assert output.regularization == {}


def test_buffers_not_parameters_and_shape_checks(adk_modes):
    model, modes = adk_modes
    deformation = NormalModeDeformation(model.coords, modes.vectors)
    assert list(deformation.parameters()) == []
    assert set(deformation.state_dict()) == {"reference", "modes"}
    with pytest.raises(ValueError, match="latents of shape"):
        deformation(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="modes of shape"):
        NormalModeDeformation(model.coords, modes.vectors[:, :10])


def test_gradient_reaches_amplitudes(adk_modes):
    model, modes = adk_modes
    deformation = NormalModeDeformation(model.coords, modes.vectors)
    amplitudes = torch.zeros(2, 4, requires_grad=True)
    deformation(amplitudes).coords.square().sum().backward()
    # d/dz Σ|X0 + U z|² at z = 0 is 2 <U_l, X0>
    expected = 2 * np.einsum("dac,ac->d", modes.vectors, model.coords)
    np.testing.assert_allclose(amplitudes.grad[0].numpy(), expected, rtol=1e-3, atol=1e-2)


def test_thermal_prior_is_the_elastic_energy_relative_to_the_softest_mode(adk_modes):
    model, modes = adk_modes
    eigenvalues = np.array([0.5, 1.0, 2.0, 4.0])
    deformation = NormalModeDeformation(model.coords, modes.vectors, eigenvalues, 0.3)
    amplitudes = torch.as_tensor(np.random.default_rng(1).normal(0, 40, size=(6, 4)))
    term = deformation(amplitudes.float()).regularization["mode_prior"]
    scaled = amplitudes.numpy() / deformation.latent_scale
    expected = 0.3 * ((scaled**2) * eigenvalues / 0.5).sum(axis=1).mean()
    assert float(term) == pytest.approx(expected, rel=1e-5)


def test_a_stiffer_mode_costs_more_for_the_same_displacement(adk_modes):
    model, modes = adk_modes
    eigenvalues = np.array([1.0, 2.0, 4.0, 8.0])
    deformation = NormalModeDeformation(model.coords, modes.vectors, eigenvalues, 1.0)
    costs = []
    for k in range(4):
        amplitudes = torch.zeros(1, 4)
        amplitudes[0, k] = deformation.latent_scale  # 1 Å RMS along mode k
        costs.append(float(deformation(amplitudes).regularization["mode_prior"]))
    np.testing.assert_allclose(costs, eigenvalues, rtol=1e-5)


def test_no_prior_adds_no_term_and_rejects_bad_eigenvalues(adk_modes):
    model, modes = adk_modes
    deformation = NormalModeDeformation(model.coords, modes.vectors, modes.eigenvalues, 0.0)
    assert deformation(torch.ones(2, 4)).regularization == {}
    with pytest.raises(ValueError, match="positive"):
        NormalModeDeformation(model.coords, modes.vectors, np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="eigenvalues of shape"):
        NormalModeDeformation(model.coords, modes.vectors, np.ones(3))


def test_learned_basis_starts_at_the_modes_and_keeps_its_state_keys(adk_modes):
    model, modes = adk_modes
    fixed = NormalModeDeformation(model.coords, modes.vectors)
    learned = NormalModeDeformation(model.coords, modes.vectors, modes_lr=1e-3)
    assert learned.parameter_groups(1e-4) == [
        {"name": "modes", "params": [learned.modes], "lr": 1e-3}
    ]
    assert fixed.parameter_groups(1e-4) == []
    assert set(learned.state_dict()) == {"reference", "modes"}  # checkpoints read both ways
    amplitudes = torch.randn(3, 4) * 30
    torch.testing.assert_close(learned(amplitudes).coords, fixed(amplitudes).coords)
    with torch.no_grad():
        learned.modes.mul_(3.0)  # a learned vector's length does not change the units
    torch.testing.assert_close(learned(amplitudes).coords, fixed(amplitudes).coords)
    with pytest.raises(ValueError, match="modes learning rate"):
        NormalModeDeformation(model.coords, modes.vectors, modes_lr=-1)


def test_learned_basis_finds_a_direction_outside_the_modes(adk_modes):
    """Conformations along a unit direction D that the four ANM modes hold only in part:
    fitting the models with the true amplitudes on mode 1, the learned basis turns mode 1
    onto D (overlap > 0.99), which the fixed basis cannot."""
    model, modes = adk_modes
    rng = np.random.default_rng(0)
    direction = modes.vectors[0] + 0.8 * rng.normal(size=modes.vectors[0].shape) / 40
    direction /= np.linalg.norm(direction)
    start_overlap = abs(float(np.sum(direction * modes.vectors[0])))
    deformation = NormalModeDeformation(model.coords, modes.vectors, modes_lr=1e-2)
    amplitudes = torch.zeros(64, 4)
    amplitudes[:, 0] = torch.linspace(-40, 40, 64)
    target = torch.as_tensor(
        model.coords + amplitudes[:, :1, None].numpy() * direction, dtype=torch.float32
    )
    (group,) = deformation.parameter_groups(0.0)
    optimizer = torch.optim.Adam(group["params"], lr=group["lr"])
    for _ in range(300):
        optimizer.zero_grad()
        loss = (deformation(amplitudes).coords - target).square().sum(-1).mean()
        loss.backward()
        optimizer.step()
    learned = deformation.basis()[0].detach().numpy()
    assert start_overlap < 0.9
    assert abs(float(np.sum(learned * direction))) > 0.99

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.analysis.metrics import (
    centroid_distance,
    emd_rmsd,
    fourier_shell_correlation,
    pairwise_rmsd,
    pearson,
    per_particle_rmsd,
    resolution_at,
    spread_about_mean,
)


def test_rmsd_of_a_uniform_displacement_after_rotation():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(30, 3)) * 10
    noise = rng.normal(size=(30, 3))
    noise -= noise.mean(0)
    predicted = (truth + noise) @ Rotation.random(random_state=1).as_matrix().T + 5.0
    expected = np.sqrt((noise**2).sum(1).mean())
    # Kabsch can only lower the RMSD below the known displacement, and not by much.
    value = per_particle_rmsd(predicted[None], truth[None])[0]
    assert value <= expected + 1e-9 and value > 0.8 * expected


def test_emd_rmsd_is_invariant_to_ordering_and_finds_matches():
    rng = np.random.default_rng(2)
    ensemble = rng.normal(size=(6, 20, 3)) * 5
    shuffled = ensemble[rng.permutation(6)]
    assert emd_rmsd(shuffled, ensemble) < 1e-9
    # Pairing by index would be wrong; the assignment is right.
    assert pairwise_rmsd(shuffled, ensemble).diagonal().mean() > 1.0


def test_fsc_of_identical_and_independent_maps():
    rng = np.random.default_rng(3)
    volume = rng.normal(size=(32, 32, 32))
    frequency, fsc = fourier_shell_correlation(volume, volume, voxel_size=2.0)
    np.testing.assert_allclose(fsc, 1.0, atol=1e-12)
    assert np.isclose(frequency[-1], 1 / 4.0)  # Nyquist = 1 / (2 * voxel size)
    _, fsc_noise = fourier_shell_correlation(volume, rng.normal(size=volume.shape), 2.0)
    assert np.abs(fsc_noise[4:]).max() < 0.2


def test_fsc_resolution_of_a_low_pass_filtered_map():
    rng = np.random.default_rng(4)
    size, voxel = 48, 1.5
    volume = rng.normal(size=(size,) * 3)
    f = np.fft.fftn(volume)
    k = np.fft.fftfreq(size) / voxel
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    cutoff = 1 / 6.0  # 6 Å
    filtered = np.fft.ifftn(f * (radius < cutoff)).real
    frequency, fsc = fourier_shell_correlation(volume, filtered, voxel)
    resolution = resolution_at(frequency, fsc, 0.5)
    assert abs(resolution - 6.0) < 0.4


def test_centroid_distance_and_pearson():
    coords = np.zeros((2, 4, 3))
    coords[:, 2:, 0] = [[3.0, 3.0], [5.0, 5.0]]
    d = centroid_distance(coords, np.array([0, 1]), np.array([2, 3]))
    np.testing.assert_allclose(d, [3.0, 5.0])
    assert np.isclose(pearson([1, 2, 3], [2, 4, 6]), 1.0)
    assert np.isclose(pearson([1, 2, 3], [3, 2, 1]), -1.0)


def test_spread_about_mean_of_two_known_states():
    """Half the models at A, half at A moved by 2 Å: each is 1 Å from the mean model."""
    base = np.random.default_rng(0).normal(size=(20, 3)) * 5
    models = np.stack([base] * 3 + [base + np.array([2.0, 0.0, 0.0])] * 3)
    assert spread_about_mean(models) == pytest.approx(1.0)
    assert spread_about_mean(np.stack([base] * 4)) == pytest.approx(0.0)

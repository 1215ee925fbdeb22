"""The NormalModes object: .npz round trip without pickles, bad files, conformations."""

import numpy as np
import pytest

from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.dynamics.modes import NormalModes
from cryomotion.errors import InputError


@pytest.fixture(scope="module")
def gramicidin_modes(gramicidin):
    return compute_normal_modes(gramicidin, n_modes=4, nodes="centroid", kernel_width=2.0)


def test_npz_round_trip(gramicidin_modes, tmp_path):
    path = gramicidin_modes.save(tmp_path / "modes.npz")
    loaded = NormalModes.load(path)
    arrays = "eigenvalues vectors coords masses cg_vectors cg_indices node_coords rigid_eigenvalues"
    for name in arrays.split():
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gramicidin_modes, name))
    assert (loaded.nodes, loaded.cutoff, loaded.kernel_width) == ("centroid", 15.0, 2.0)
    assert loaded.mass_weighted is False and loaded.source == gramicidin_modes.source
    # A plain reader needs no pickle and finds the documented arrays.
    with np.load(path, allow_pickle=False) as data:
        assert data["vectors"].shape == (4, 272, 3)
        assert data["eigenvalues"].shape == (4,)
        assert data["cg_indices"].shape == (34,)


def test_zero_modes_round_trip(gramicidin, tmp_path):
    modes = compute_normal_modes(gramicidin, n_modes=0)
    loaded = NormalModes.load(modes.save(tmp_path / "none.npz"))
    assert loaded.n_modes == 0 and loaded.vectors.shape == (0, 272, 3)
    np.testing.assert_array_equal(loaded.conformations(np.zeros((2, 0))), [gramicidin.coords] * 2)


def test_any_suffix_is_written_where_asked(gramicidin_modes, tmp_path):
    path = gramicidin_modes.save(tmp_path / "modes.data")
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["modes.data"]


def test_bad_files_are_input_errors(gramicidin_modes, tmp_path):
    with pytest.raises(InputError, match="no such normal-modes file"):
        NormalModes.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(InputError, match="not a readable"):
        NormalModes.load(tmp_path / "text.npz")
    np.savez(tmp_path / "partial.npz", eigenvalues=np.ones(3))
    with pytest.raises(InputError, match="missing arrays vectors"):
        NormalModes.load(tmp_path / "partial.npz")


def test_conformations_and_first(gramicidin_modes):
    amplitudes = np.array([[1.0, 0, 0, 0], [0, 0, -2.0, 0]])
    conformations = gramicidin_modes.conformations(amplitudes)
    np.testing.assert_allclose(
        conformations[1], gramicidin_modes.coords - 2.0 * gramicidin_modes.vectors[2]
    )
    first = gramicidin_modes.first(2)
    assert first.n_modes == 2 and first.cg_vectors.shape == (2, 34, 3)
    with pytest.raises(ValueError, match="amplitudes"):
        gramicidin_modes.conformations(np.zeros(3))


def test_too_many_modes_is_an_input_error(gramicidin):
    with pytest.raises(InputError, match="has only 84 non-trivial modes"):
        compute_normal_modes(gramicidin, n_modes=85)


def test_sweep_reaches_the_rms_amplitude_and_loops(gramicidin_modes):
    sweep = gramicidin_modes.sweep(1, rms_amplitude=1.5, frames=8)
    rms = np.sqrt(np.mean(np.sum((sweep - gramicidin_modes.coords) ** 2, axis=2), axis=1))
    np.testing.assert_allclose(rms, 1.5 * np.abs(np.sin(2 * np.pi * np.arange(8) / 8)), atol=1e-12)
    np.testing.assert_allclose(sweep[2] - sweep[0], -(sweep[6] - sweep[0]), atol=1e-12)

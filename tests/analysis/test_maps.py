import mrcfile
import numpy as np

from cryomotion.analysis.maps import atomic_potential_map, write_map
from cryomotion.structure.form_factors import electron_form_factor


def test_one_atom_integrates_to_its_scattering_total_and_sits_where_it_should():
    voxel, box = 1.0, 32
    position = np.array([[16.0, 12.0, 20.0]])  # x, y, z in Å
    volume = atomic_potential_map(position, np.array(["O"]), box, voxel)
    a, _ = electron_form_factor("O")
    assert abs(volume.sum() * voxel**3 - a.sum()) / a.sum() < 1e-4
    z, y, x = np.unravel_index(volume.argmax(), volume.shape)
    assert (x, y, z) == (16, 12, 20)


def test_radial_profile_matches_the_analytic_potential():
    # A carbon atom's potential blurred by a B-factor of 40 Å² (so that it is band-limited
    # at this voxel size): sum_i a_i (4 pi / b'_i)^(3/2) exp(-4 pi^2 r^2 / b'_i), b' = b + B.
    voxel, box, b_factor = 0.5, 48, 40.0
    centre = np.array([[12.0, 12.0, 12.0]])
    volume = atomic_potential_map(centre, np.array(["C"]), box, voxel, b_factor=b_factor)
    a, b = electron_form_factor("C")
    b = b + b_factor
    for r in (0.0, 0.5, 1.0, 1.5, 2.0):
        index = int(round((12.0 + r) / voxel))
        analytic = np.sum(a * (4 * np.pi / b) ** 1.5 * np.exp(-4 * np.pi**2 * r**2 / b))
        assert abs(volume[24, 24, index] - analytic) < 1e-3 * analytic + 1e-6


def test_written_map_has_voxel_size_and_origin(tmp_path):
    volume = np.zeros((8, 8, 8), dtype=np.float32)
    path = write_map(tmp_path / "m.mrc", volume, 1.25, origin=(10.0, 0.0, -5.0))
    with mrcfile.open(path) as mrc:
        assert np.isclose(mrc.voxel_size.x, 1.25)
        assert (float(mrc.header.origin.x), float(mrc.header.origin.z)) == (10.0, -5.0)

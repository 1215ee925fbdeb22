"""cryoDRGN pickles: the same particles as the STAR file, read without trusting the pickle."""

import pickle

import numpy as np
import pytest

from cryomotion.data import read_particles, write_star
from cryomotion.data.cryodrgn import load_pickle_safely
from cryomotion.errors import InputError


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pkl_with_stack_list_equals_star(tmp_path, two_groups, kit, protocol):
    table, _ = two_groups
    table = table.subset(np.arange(len(table)))
    table = type(table)(**{**table.__dict__, "ctf": table.ctf * [1, 1, 1, 1, 1, 1, 1, 0]})
    write_star(tmp_path / "particles.star", table)
    poses, ctf = kit.write_cryodrgn_pkls(tmp_path, table, protocol)
    stacks = tmp_path / "stacks.txt"
    stacks.write_text("Extract/stack1.mrcs\nExtract/stack2.mrcs\n")
    from_star = read_particles(tmp_path / "particles.star")
    from_pkl = read_particles(stacks, poses=poses, ctf=ctf)
    kit.assert_same_particles(from_pkl, from_star, atol=2e-5, optics=False)  # float32 pickles
    assert from_pkl.optics_group.tolist() == [1] * len(table)  # no groups in pickles
    kit.assert_same_particles(
        read_particles(tmp_path / "particles.star", poses=poses, ctf=ctf), from_star, atol=2e-5
    )


def test_pkl_with_single_stack(tmp_path, kit):
    table, _ = kit.make_table(tmp_path, groups=((1.1, 300.0, 2.7),), per_stack=4)
    poses, ctf = kit.write_cryodrgn_pkls(tmp_path, table)
    read = read_particles(tmp_path / "Extract" / "stack1.mrcs", poses=poses, ctf=ctf)
    np.testing.assert_allclose(read.shifts, table.shifts, atol=1e-5)
    np.testing.assert_allclose(read.rotations, table.rotations, atol=1e-6)


def test_safe_unpickler_loads_numeric_arrays(tmp_path):
    value = (np.arange(6.0).reshape(2, 3), [np.float64(2.5), np.int32(3)], {"a": np.ones(2)})
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(value))
    loaded = load_pickle_safely(path)
    np.testing.assert_array_equal(loaded[0], value[0])
    assert loaded[1][0] == 2.5 and loaded[2]["a"].sum() == 2


def test_stack_needs_both_pickles(tmp_path, kit):
    kit.make_table(tmp_path)
    poses = tmp_path / "poses.pkl"
    with pytest.raises(InputError, match=r"needs ctf \(ctf.pkl\)"):
        read_particles(tmp_path / "Extract" / "stack1.mrcs", poses=poses)

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


def test_downsampled_stack_with_pickles_of_the_original_box(tmp_path, kit, caplog):
    # cryoDRGN's documented workflow: parse poses/CTF for the original 32-px stack, then
    # `cryodrgn downsample -D 16`; ctf.pkl keeps D = 32 and the original pixel size and
    # cryoDRGN's ctf.load_ctf_for_training uses Apix = ctf[0, 0] * ctf[0, 1] / D_stack.
    from cryomotion.data.downsample import downsample_image

    original, images = kit.make_table(tmp_path / "full", groups=((0.75, 300.0, 2.7),))
    big = np.random.default_rng(5).normal(size=(len(original), 32, 32)).astype(np.float32)
    full_stack = kit.write_mrcs(tmp_path / "full" / "particles.32.mrcs", big, 0.75)
    original = type(original)(
        **{
            **original.__dict__,
            "box_size": 32,
            "image_files": np.array([str(full_stack.resolve())] * len(original), dtype=object),
            "ctf": original.ctf * [1, 1, 1, 1, 1, 1, 1, 0],  # no B-factor in ctf.pkl
        }
    )
    poses, ctf = kit.write_cryodrgn_pkls(tmp_path, original)
    small = kit.write_mrcs(tmp_path / "particles.16.mrcs", downsample_image(big, 16), 1.5)
    with caplog.at_level("WARNING"):
        read = read_particles(small, poses=poses, ctf=ctf)
    assert not caplog.records  # a documented workflow, not a disagreement
    ctf_table = pickle.loads(ctf.read_bytes())
    cryodrgn_apix = ctf_table[0, 0] * ctf_table[0, 1] / 16
    np.testing.assert_allclose(read.pixel_size, cryodrgn_apix)
    np.testing.assert_allclose(read.pixel_size, 1.5, rtol=1e-6)
    assert read.box_size == 16
    np.testing.assert_allclose(read.shifts, original.shifts, atol=1e-4)  # Å, box-independent
    np.testing.assert_allclose(read.ctf, original.ctf, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(
        read_particles(full_stack, poses=poses, ctf=ctf).pixel_size, 0.75, rtol=1e-6
    )


def test_ctf_pkl_overrides_and_physical_range(tmp_path, kit, caplog):
    table, _ = kit.make_table(tmp_path, groups=((1.1, 300.0, 2.7),), per_stack=4)
    poses, ctf = kit.write_cryodrgn_pkls(tmp_path, table)
    stack = tmp_path / "Extract" / "stack1.mrcs"
    with caplog.at_level("WARNING"):
        read = read_particles(stack, poses=poses, ctf=ctf, amplitude_contrast=0.07, voltage=200)
    np.testing.assert_allclose(read.ctf[:, 5], 0.07)
    np.testing.assert_allclose(read.ctf[:, 3], 200.0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("column 6 (voltage) 300" in m and "--voltage 200" in m for m in messages)
    values = pickle.loads(ctf.read_bytes())
    values[2, 5] = -300.0
    ctf.write_bytes(pickle.dumps(values))
    with pytest.raises(InputError, match=r"column 6 \(voltage\) of row 3 is -300"):
        read_particles(stack, poses=poses, ctf=ctf)

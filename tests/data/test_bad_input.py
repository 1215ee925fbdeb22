"""Broken particle inputs: each gives one InputError line naming the file and the field."""

import os
import pickle
import re

import mrcfile
import numpy as np
import pytest
import starfile

from cryomotion.data import ParticleDataset, read_particles, write_star
from cryomotion.data.cryodrgn import load_pickle_safely
from cryomotion.errors import InputError


@pytest.fixture
def star(tmp_path, two_groups):
    """A valid RELION 3.1 particle file of six particles; returns (path, table)."""
    table, _ = two_groups
    path = tmp_path / "particles.star"
    write_star(path, table)
    return path, table


def raises(*patterns, call, **kwargs):
    """Run ``call(**kwargs)``; assert a one-line InputError containing every pattern."""
    with pytest.raises(InputError) as info:
        call(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    for pattern in patterns:
        assert str(pattern) in message, f"{pattern!r} not in {message!r}"
    return message


def rewrite(path, edit):
    blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnImageName"])
    edit(blocks)
    starfile.write(blocks, path)


@pytest.mark.parametrize(
    "column", ["rlnImageName", "rlnDefocusU", "rlnAngleTilt", "rlnSphericalAberration"]
)
def test_missing_star_column(star, column):
    path, _ = star

    def drop(blocks):
        for name, block in blocks.items():
            blocks[name] = block.drop(columns=column, errors="ignore")

    rewrite(path, drop)
    raises(path, f"missing column {column}", call=read_particles, path=path)


def test_stack_shorter_than_the_star_file(star):
    path, _ = star
    rewrite(
        path,
        lambda b: b["particles"].loc.__setitem__((5, "rlnImageName"), "000009@Extract/stack2.mrcs"),
    )
    stack = path.parent / "Extract" / "stack2.mrcs"
    raises(path, stack, "000009@", "holds 3 images", call=read_particles, path=path)


@pytest.mark.parametrize("outside", ["../elsewhere/stack.mrcs", "ABSOLUTE"])
def test_image_name_outside_the_dataset_folder_is_read_as_relion_does(star, kit, outside):
    # RELION and cryoDRGN accept absolute image names and names through ..; so does
    # cryomotion (its own write_star writes such names for stacks in another folder).
    path, _ = star
    dataset = path.parent / "dataset"
    dataset.mkdir()
    moved = dataset / "particles.star"
    path.rename(moved)
    target = kit.write_mrcs(path.parent / "elsewhere" / "stack.mrcs", np.zeros((3, 16, 16), "f4"))
    name = str(target) if outside == "ABSOLUTE" else outside
    rewrite(moved, lambda b: b["particles"].__setitem__("rlnImageName", f"000001@{name}"))
    table = read_particles(moved)
    assert set(table.image_files) == {str(target)}


def test_image_name_that_is_not_a_regular_file(star):
    path, _ = star
    (path.parent / "Extract" / "folder.mrcs").mkdir()
    rewrite(path, lambda b: b["particles"].__setitem__("rlnImageName", "1@Extract/folder.mrcs"))
    raises(path, "rlnImageName", "not a regular file", call=read_particles, path=path)


def test_nan_pixels_named_by_stack_and_index(star):
    path, _ = star
    stack = path.parent / "Extract" / "stack1.mrcs"
    with mrcfile.open(stack, mode="r+") as mrc:
        mrc.data[2, 5, 5] = np.nan
    dataset = ParticleDataset(read_particles(path))
    dataset[1]  # clean images still read
    raises(stack, "image 2", "NaN", call=dataset.__getitem__, index=2)


def test_pixel_size_disagreeing_with_the_header_warns_and_uses_the_metadata(star, caplog):
    # RELION takes the optics table's pixel size and ignores the stack header.
    path, _ = star
    rewrite(path, lambda b: b["optics"].__setitem__("rlnImagePixelSize", [1.6, 1.2]))
    stack = path.parent / "Extract" / "stack1.mrcs"
    with caplog.at_level("WARNING"):
        table = read_particles(path)
    np.testing.assert_allclose(sorted(set(table.pixel_size)), [1.2, 1.6])
    warnings = [r.getMessage() for r in caplog.records if "voxel size" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    for text in ("rlnImagePixelSize 1.6", "voxel size 1.5", str(stack), str(path)):
        assert text in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        table = read_particles(path, pixel_size=1.7)  # the explicit override wins
    np.testing.assert_allclose(table.pixel_size, 1.7)
    assert any("replaced by the given --pixel-size 1.7" in r.getMessage() for r in caplog.records)


def test_box_differing_across_stacks(star, kit):
    path, _ = star
    kit.write_mrcs(path.parent / "Extract" / "stack2.mrcs", np.zeros((3, 20, 20), "f4"), 1.2)
    raises(path, "stack2.mrcs", "20-pixel", "expected one box size", call=read_particles, path=path)


def test_truncated_stack(star):
    path, _ = star
    stack = path.parent / "Extract" / "stack2.mrcs"
    os.truncate(stack, os.path.getsize(stack) - 100)
    raises(stack, "truncated", call=read_particles, path=path)


def test_malformed_star_row_with_extra_fields(star):
    path, _ = star
    path.write_text(path.read_text().rstrip("\n") + "\t1.0\t2.0\n")
    raises(path, "malformed STAR file", call=read_particles, path=path)


def test_star_value_that_is_not_a_number(star):
    path, _ = star
    lines = path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("000002@"))
    fields = lines[row].split("\t")
    fields[6] = "12a34"  # rlnDefocusU
    lines[row] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    raises(path, "rlnDefocusU", "row 2", "'12a34'", call=read_particles, path=path)


def test_star_without_data_blocks(tmp_path):
    path = tmp_path / "empty.star"
    path.write_text("# nothing here\n")
    raises(path, "no data_ block", call=read_particles, path=path)


def test_missing_stack_file(star):
    path, _ = star
    os.remove(path.parent / "Extract" / "stack1.mrcs")
    raises(path, "Extract/stack1.mrcs", "not found", call=read_particles, path=path)


@pytest.fixture
def pickles(tmp_path, star, kit):
    _, table = star
    return kit.write_cryodrgn_pkls(tmp_path, table)


def test_ctf_pkl_with_a_wrong_shape(tmp_path, star, pickles):
    path, _ = star
    poses, ctf = pickles
    with open(ctf, "wb") as file:
        pickle.dump(np.zeros((6, 8)), file)
    raises(ctf, "(6, 8)", "(N, 9)", call=read_particles, path=path, poses=poses, ctf=ctf)


def test_poses_pkl_with_a_wrong_shape(tmp_path, star, pickles):
    path, _ = star
    poses, ctf = pickles
    with open(poses, "wb") as file:
        pickle.dump((np.zeros((6, 3)), np.zeros((6, 2))), file)
    raises(poses, "rot", "(N, 3, 3)", call=read_particles, path=path, poses=poses, ctf=ctf)


def test_pkl_particle_count_differs_from_the_images(tmp_path, star, pickles):
    path, table = star
    poses, ctf = pickles
    with open(ctf, "wb") as file:
        pickle.dump(np.ones((5, 9)), file)
    raises(ctf, "5 particles", path, call=read_particles, path=path, poses=poses, ctf=ctf)


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned')",))


@pytest.mark.parametrize("wrap", ["bare", "inside_tuple"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, star, pickles, wrap):
    path, _ = star
    poses, ctf = pickles
    marker = tmp_path / "pwned"
    payload = _RunsAShellCommand(marker)
    content = payload if wrap == "bare" else (np.eye(3)[None], payload)
    with open(poses, "wb") as file:
        pickle.dump(content, file)
    message = raises(poses, "refused", call=read_particles, path=path, poses=poses, ctf=ctf)
    assert re.search(r"(posix|os|nt)\.system", message)
    assert not marker.exists()
    with open(ctf, "wb") as file:
        pickle.dump(_CallsEval(), file)
    raises(ctf, "builtins.eval", call=load_pickle_safely, path=ctf)


def test_cs_missing_a_field(tmp_path, star, kit):
    _, table = star
    cs_path = kit.write_cs(tmp_path / "particles.cs", table, project=tmp_path)
    full = np.load(cs_path)
    kept = [name for name in full.dtype.names if name != "alignments3D/pose"]
    with open(cs_path, "wb") as file:
        np.save(file, full[kept])
    raises(cs_path, "missing field alignments3D/pose", call=read_particles, path=cs_path)


def test_cs_that_is_not_a_numpy_file(tmp_path):
    path = tmp_path / "particles.cs"
    path.write_bytes(b"not numpy at all")
    raises(path, "not a cryoSPARC .cs file", call=read_particles, path=path)


def test_unknown_file_type(tmp_path):
    path = tmp_path / "particles.csv"
    path.write_text("a,b\n")
    raises(path, "unknown particle file type '.csv'", call=read_particles, path=path)


def test_duplicate_optics_group_numbers(star):
    path, _ = star
    rewrite(path, lambda b: b["optics"].__setitem__("rlnOpticsGroup", [1, 1]))
    raises(path, "optics group 1", "rows 1 and 2", "rlnOpticsGroup", call=read_particles, path=path)


@pytest.mark.parametrize(
    "column, value, row, expected",
    [  # optics-table values are set for group 2, whose first particle is row 4
        ("rlnVoltage", -300.0, 4, "positive acceleration voltage"),
        ("rlnVoltage", 0.0, 4, "positive acceleration voltage"),
        ("rlnSphericalAberration", -5.0, 4, "between -0.1 and 20"),
        ("rlnAmplitudeContrast", 1.5, 4, "between 0 and 1"),
        ("rlnDefocusU", 1e12, 2, "at most 1e6"),
        ("rlnDefocusV", -2e6, 2, "at most 1e6"),
        ("rlnDefocusU", "nan", 2, "expected a number"),
        ("rlnCtfBfactor", "inf", 2, "expected a number"),
    ],
)
def test_ctf_value_outside_its_physical_range(star, column, value, row, expected):
    path, _ = star

    def edit(blocks):
        block = "optics" if column in blocks["optics"].columns else "particles"
        blocks[block][column] = blocks[block][column].astype(object)
        blocks[block].loc[1, column] = value

    rewrite(path, edit)
    raises(path, column, f"row {row}", expected, call=read_particles, path=path)


def test_ctf_override_outside_its_physical_range(star):
    path, _ = star
    raises(path, "--voltage", "positive", call=read_particles, path=path, voltage=-300.0)

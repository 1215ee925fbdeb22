"""RELION STAR files: 3.0 and 3.1 reading, 3.1 writing, subsets with all columns."""

from pathlib import Path

import numpy as np
import pytest
import starfile

from cryomotion.data import read_particles, write_star, write_star_subset
from cryomotion.data.poses import matrix_to_euler, shift_to_origin
from cryomotion.errors import InputError


def _euler_and_origin(table):
    rot, tilt, psi = matrix_to_euler(table.rotations)
    return rot, tilt, psi, shift_to_origin(table.shifts)


def relion31_text(table, image_names) -> str:
    """A RELION 3.1 particle file written by hand, as RELION lays it out."""
    rot, tilt, psi, origin = _euler_and_origin(table)
    lines = ["", "# version 30001", "", "data_optics", "", "loop_"]
    lines += [
        f"_{name} #{k}"
        for k, name in enumerate(
            [
                "rlnOpticsGroupName",
                "rlnOpticsGroup",
                "rlnMicrographOriginalPixelSize",
                "rlnVoltage",
                "rlnSphericalAberration",
                "rlnAmplitudeContrast",
                "rlnImagePixelSize",
                "rlnImageSize",
                "rlnImageDimensionality",
            ],
            start=1,
        )
    ]
    for group in np.unique(table.optics_group):
        k = np.flatnonzero(table.optics_group == group)[0]
        voltage, cs, amplitude = table.ctf[k, 3:6]
        lines.append(
            f"opticsGroup{group} {group} 0.5 {voltage:.6f} {cs:.6f} {amplitude:.6f} "
            f"{table.pixel_size[k]:.6f} {table.box_size} 2"
        )
    columns = [
        "rlnCoordinateX",
        "rlnImageName",
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnDefocusAngle",
        "rlnPhaseShift",
        "rlnCtfBfactor",
        "rlnOpticsGroup",
        "rlnClassNumber",
    ]
    lines += ["", "", "# version 30001", "", "data_particles", "", "loop_"]
    lines += [f"_{name} #{k}" for k, name in enumerate(columns, start=1)]
    for i in range(len(table)):
        du, dv, angle, _, _, _, phase, bfactor = table.ctf[i]
        lines.append(
            f"{100.5 + i:.6f} {image_names[i]} {rot[i]:.6f} {tilt[i]:.6f} {psi[i]:.6f} "
            f"{origin[i, 0]:.6f} {origin[i, 1]:.6f} {du:.6f} {dv:.6f} {angle:.6f} "
            f"{phase:.6f} {bfactor:.6f} {table.optics_group[i]} {1 + i % 3}"
        )
    return "\n".join(lines) + "\n"


def relative_names(table, folder: Path):
    return [
        f"{index + 1:06d}@{Path(file).relative_to(folder.resolve())}"
        for file, index in zip(table.image_files, table.image_indices)
    ]


def test_relion31_two_optics_groups(tmp_path, two_groups, kit):
    table, _ = two_groups
    path = tmp_path / "particles.star"
    path.write_text(relion31_text(table, relative_names(table, tmp_path)))
    read = read_particles(path)
    kit.assert_same_particles(read, table)
    assert sorted(set(read.pixel_size)) == [1.2, 1.5]
    assert sorted(set(read.ctf[:, 3])) == [200.0, 300.0]
    assert read.source == str(path)
    assert set(read.star) == {"optics", "particles"}
    with pytest.raises(InputError, match="several pixel sizes"):
        _ = read.single_pixel_size
    assert read.subset(read.optics_group == 2).single_pixel_size == 1.2


def test_relion30_pixel_origins_and_detector_pixel_size(tmp_path, kit):
    table, _ = kit.make_table(tmp_path, groups=((1.4, 300.0, 2.7),))
    rot, tilt, psi, origin = _euler_and_origin(table)
    origin_pixels = origin / 1.4
    columns = [
        "rlnImageName",
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
        "rlnOriginX",
        "rlnOriginY",
        "rlnDefocusU",
        "rlnDefocusV",
        "rlnDefocusAngle",
        "rlnVoltage",
        "rlnSphericalAberration",
        "rlnAmplitudeContrast",
        "rlnPhaseShift",
        "rlnCtfBFactor",  # a spelling seen in the wild; RELION's label is rlnCtfBfactor
        "rlnDetectorPixelSize",
        "rlnMagnification",
    ]
    lines = ["", "data_", "", "loop_"] + [f"_{c} #{k}" for k, c in enumerate(columns, 1)]
    names = relative_names(table, tmp_path)
    for i in range(len(table)):
        values = [rot[i], tilt[i], psi[i], *origin_pixels[i], *table.ctf[i]]
        lines.append(names[i] + " " + " ".join(f"{v:.6f}" for v in values) + " 14.0 100000.0")
    path = tmp_path / "relion30.star"
    path.write_text("\n".join(lines) + "\n")
    kit.assert_same_particles(read_particles(path), table)


def test_relion30_without_pixel_size_needs_the_argument(tmp_path, kit):
    table, _ = kit.make_table(tmp_path, groups=((1.4, 300.0, 2.7),))
    path = tmp_path / "p.star"
    write_star(path, table)
    blocks = starfile.read(path)
    particles = blocks["particles"].drop(columns="rlnOpticsGroup")
    for column in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
        particles[column] = blocks["optics"][column].iloc[0]
    starfile.write(particles, path)  # one unnamed loop, no pixel size: RELION 3.0 style
    with pytest.raises(InputError, match="no pixel size.*pixel_size"):
        read_particles(path)
    kit.assert_same_particles(read_particles(path, pixel_size=1.4), table)
    # the given pixel size stands, a disagreeing header only warns (as RELION ignores it)
    np.testing.assert_allclose(read_particles(path, pixel_size=1.6).pixel_size, 1.6)


def test_write_star_round_trip(tmp_path, two_groups, kit):
    table, _ = two_groups
    path = tmp_path / "written.star"
    write_star(path, table)
    text = path.read_text()
    assert "# version 30001" in text and "data_optics" in text and "data_particles" in text
    blocks = starfile.read(path)
    assert list(blocks["optics"].columns) == [
        "rlnOpticsGroup",
        "rlnOpticsGroupName",
        "rlnImagePixelSize",
        "rlnImageSize",
        "rlnImageDimensionality",
        "rlnVoltage",
        "rlnSphericalAberration",
        "rlnAmplitudeContrast",
    ]
    assert blocks["particles"]["rlnImageName"][0] == "000001@Extract/stack1.mrcs"
    kit.assert_same_particles(read_particles(path), table)


def test_write_star_splits_inconsistent_optics_groups(tmp_path, two_groups, kit):
    table, _ = two_groups
    merged = type(table)(**{**table.__dict__, "optics_group": np.ones(len(table), int)})
    write_star(tmp_path / "merged.star", merged)
    read = read_particles(tmp_path / "merged.star")
    assert sorted(set(read.optics_group)) == [1, 2]
    np.testing.assert_allclose(read.pixel_size, table.pixel_size)


def test_write_star_subset_keeps_all_columns(tmp_path, two_groups, kit):
    table, _ = two_groups
    path = tmp_path / "particles.star"
    path.write_text(relion31_text(table, relative_names(table, tmp_path)))
    read = read_particles(path)
    write_star_subset(tmp_path / "state1.star", read, [4, 0])
    original, subset = starfile.read(path), starfile.read(tmp_path / "state1.star")
    assert list(subset["particles"].columns) == list(original["particles"].columns)
    assert subset["particles"]["rlnClassNumber"].tolist() == [2, 1]
    assert subset["optics"].equals(original["optics"])
    kit.assert_same_particles(read_particles(tmp_path / "state1.star"), table.subset([4, 0]))


def test_image_names_relative_to_a_project_folder(tmp_path, two_groups, kit):
    table, _ = two_groups
    job = tmp_path / "Refine3D" / "job007"
    job.mkdir(parents=True)
    path = job / "run_data.star"
    path.write_text(relion31_text(table, relative_names(table, tmp_path)))
    with pytest.raises(InputError, match=f"exists under {tmp_path}: pass dataset_dir"):
        read_particles(path)
    kit.assert_same_particles(read_particles(path, dataset_dir=tmp_path), table)


def _one_line_warnings(caplog, text):
    found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
    assert all("\n" not in message for message in found)
    return found


def relion30_file(tmp_path, kit, drop=()):
    """A RELION 3.0-style file (one loop, optics per particle) without the columns ``drop``."""
    table, _ = kit.make_table(tmp_path, groups=((1.4, 300.0, 2.7),))
    path = tmp_path / "p30.star"
    write_star(path, table)
    blocks = starfile.read(path)
    particles = blocks["particles"].drop(columns="rlnOpticsGroup")
    for column in ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"):
        particles[column] = blocks["optics"][column].iloc[0]
    particles["rlnImagePixelSize"] = 1.4
    starfile.write(particles.drop(columns=list(drop)), path)
    return path, table


def test_write_star_into_another_folder_reads_back_from_there(tmp_path, kit):
    # particles_state_K.star sits in run/analysis/, the stacks in the data folder: the
    # image names are relative to the STAR file's own folder, which is where cryomotion,
    # cryoDRGN (default datadir: the STAR file's folder) and RELION run from there look.
    table, _ = kit.make_table(tmp_path / "data", groups=((1.5, 300.0, 2.7), (1.2, 200.0, 2.0)))
    out = tmp_path / "run" / "analysis"
    out.mkdir(parents=True)
    path = write_star(out / "particles_state_1.star", table)
    names = starfile.read(path)["particles"]["rlnImageName"]
    assert names[0] == "000001@../../data/Extract/stack1.mrcs"
    for name, file in zip(names, table.image_files):
        stack = name.split("@", 1)[1]
        assert not Path(stack).is_absolute()
        assert (out / stack).resolve() == Path(file).resolve()  # cryoDRGN's and RELION's join
    kit.assert_same_particles(read_particles(path), table)
    absolute = write_star(out / "absolute.star", table, absolute=True)
    names = starfile.read(absolute)["particles"]["rlnImageName"]
    assert names[0] == f"000001@{table.image_files[0]}"
    kit.assert_same_particles(read_particles(absolute), table)


def test_write_star_subset_into_another_folder_rewrites_image_names(tmp_path, two_groups, kit):
    table, _ = two_groups
    path = tmp_path / "particles.star"
    path.write_text(relion31_text(table, relative_names(table, tmp_path)))
    read = read_particles(path)
    same_folder = write_star_subset(tmp_path / "state1.star", read, [4, 0])
    original = starfile.read(path)["particles"]["rlnImageName"]
    kept = starfile.read(same_folder)["particles"]["rlnImageName"]
    assert kept.tolist() == [original[4], original[0]]  # still valid there: unchanged
    analysis = tmp_path / "run" / "analysis"
    analysis.mkdir(parents=True)
    moved = write_star_subset(analysis / "state1.star", read, [4, 0])
    names = starfile.read(moved)["particles"]["rlnImageName"]
    assert names[0] == "000002@../../Extract/stack2.mrcs"
    kit.assert_same_particles(read_particles(moved), table.subset([4, 0]))


def test_relion30_without_amplitude_contrast_uses_relions_default(tmp_path, kit, caplog):
    # RELION's CTF::readByGroup reads rlnAmplitudeContrast with default Q0 = 0.
    path, table = relion30_file(tmp_path, kit, drop=["rlnAmplitudeContrast"])
    with caplog.at_level("WARNING"):
        read = read_particles(path)
    np.testing.assert_array_equal(read.ctf[:, 5], 0.0)
    (warning,) = _one_line_warnings(caplog, "rlnAmplitudeContrast")
    assert "--amplitude-contrast" in warning and str(path) in warning
    caplog.clear()
    with caplog.at_level("WARNING"):
        read = read_particles(path, amplitude_contrast=0.1)  # cryoDRGN's -w default
    np.testing.assert_allclose(read.ctf[:, 5], 0.1)
    kit.assert_same_particles(read, table)
    assert not _one_line_warnings(caplog, "rlnAmplitudeContrast")


@pytest.mark.parametrize(
    "column, flag, keyword, value",
    [
        ("rlnVoltage", "--voltage", "voltage", 300.0),
        ("rlnSphericalAberration", "--spherical-aberration", "spherical_aberration", 2.7),
    ],
)
def test_missing_voltage_or_cs_names_the_column_and_the_flag(
    tmp_path, kit, column, flag, keyword, value
):
    path, table = relion30_file(tmp_path, kit, drop=[column])
    with pytest.raises(InputError) as info:
        read_particles(path)
    message = str(info.value)
    assert str(path) in message and f"missing column {column}" in message and flag in message
    assert "\n" not in message
    kit.assert_same_particles(read_particles(path, **{keyword: value}), table)


def test_optics_overrides_win_over_the_file_with_a_warning(tmp_path, two_groups, kit, caplog):
    table, _ = two_groups
    path = write_star(tmp_path / "particles.star", table)
    with caplog.at_level("WARNING"):
        read = read_particles(
            path, amplitude_contrast=0.07, voltage=120.0, spherical_aberration=1.4
        )
    np.testing.assert_allclose(read.ctf[:, 3:6], np.tile([120.0, 1.4, 0.07], (len(table), 1)))
    kept = [0, 1, 2, 6, 7]
    np.testing.assert_allclose(read.ctf[:, kept], table.ctf[:, kept], atol=1e-5)
    for column, flag in (
        ("rlnVoltage 200 to 300", "--voltage 120"),
        ("rlnSphericalAberration 2 to 2.7", "--spherical-aberration 1.4"),
        ("rlnAmplitudeContrast 0.1", "--amplitude-contrast 0.07"),
    ):
        (warning,) = _one_line_warnings(caplog, column)
        assert f"replaced by the given {flag}" in warning


def _edit_optics(path, **columns):
    blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnImageName"])
    for name, value in columns.items():
        blocks["optics"][name] = value
    starfile.write(blocks, path)


def test_subtomograms_are_refused(tmp_path, two_groups):
    table, _ = two_groups
    path = write_star(tmp_path / "particles.star", table)
    _edit_optics(path, rlnImageDimensionality=[2, 3])
    with pytest.raises(InputError, match=r"rlnImageDimensionality of row 4 is 3.*2-D") as info:
        read_particles(path)
    assert str(path) in str(info.value)


def test_ctf_premultiplied_particles_are_refused(tmp_path, two_groups, kit):
    table, _ = two_groups
    path = write_star(tmp_path / "particles.star", table)
    _edit_optics(path, rlnCtfDataAreCtfPremultiplied=[0, 0])
    kit.assert_same_particles(read_particles(path), table)
    _edit_optics(path, rlnCtfDataAreCtfPremultiplied=[0, 1])
    with pytest.raises(InputError, match="rlnCtfDataAreCtfPremultiplied.*not supported"):
        read_particles(path)


def test_unmodelled_image_formation_columns_give_one_warning(tmp_path, two_groups, caplog):
    table, _ = two_groups
    path = write_star(tmp_path / "particles.star", table)
    neutral = {
        "rlnMagMat00": [1.0, 1.0],
        "rlnMagMat01": [0.0, 0.0],
        "rlnMagMat10": [0.0, 0.0],
        "rlnMagMat11": [1.0, 1.0],
        "rlnBeamTiltX": [0.0, 0.0],
        "rlnBeamTiltY": [0.0, 0.0],
        "rlnOddZernike": ["[0.000000,0.000000]", "[0.000000,0.000000]"],
    }
    _edit_optics(path, **neutral)
    with caplog.at_level("WARNING"):
        read_particles(path)
    assert not _one_line_warnings(caplog, "ignoring")  # no-op values: nothing ignored
    _edit_optics(
        path,
        rlnMagMat00=[1.01, 1.0],
        rlnBeamTiltX=[0.0, 0.3],
        rlnOddZernike=["[0.000000,0.000000]", "[0.1,-0.2]"],
        rlnEvenZernike=["[0.05,0.0,0.0]", "[0.0,0.0,0.0]"],
    )
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_particles(path)
    (warning,) = _one_line_warnings(caplog, "ignoring")
    for name in ("rlnMagMat00", "rlnBeamTiltX", "rlnOddZernike", "rlnEvenZernike", str(path)):
        assert name in warning
    assert "rlnBeamTiltY" not in warning and "rlnMagMat11" not in warning

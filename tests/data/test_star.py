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
    with pytest.raises(InputError, match="header voxel size 1.4"):
        read_particles(path, pixel_size=1.6)


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

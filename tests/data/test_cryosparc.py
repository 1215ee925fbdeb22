"""cryoSPARC .cs files read into the same particles as the RELION STAR file."""

import numpy as np
import pytest
from numpy.lib import recfunctions

from cryomotion.data import read_particles, write_star
from cryomotion.errors import InputError


def test_cs_equals_star(tmp_path, two_groups, kit):
    table, _ = two_groups
    job = tmp_path / "J12"
    job.mkdir()
    cs = kit.write_cs(job / "J12_particles.cs", table, project=tmp_path)
    write_star(tmp_path / "particles.star", table)
    from_star = read_particles(tmp_path / "particles.star")
    from_cs = read_particles(cs, dataset_dir=tmp_path)
    kit.assert_same_particles(from_cs, from_star, atol=2e-5)  # .cs stores float32
    assert from_cs.star is None and from_cs.source == str(cs)


def test_cs_paths_resolve_against_its_folder_by_default(tmp_path, two_groups, kit):
    table, _ = two_groups
    cs = kit.write_cs(tmp_path / "particles.cs", table, project=tmp_path)
    kit.assert_same_particles(read_particles(cs), table, atol=2e-5)
    job = tmp_path / "J3"
    job.mkdir()
    moved = kit.write_cs(job / "particles.cs", table, project=tmp_path)
    with pytest.raises(InputError, match=f"exists under {tmp_path}: pass dataset_dir"):
        read_particles(moved)


def test_passthrough_cs_fills_missing_fields(tmp_path, two_groups, kit):
    table, _ = two_groups
    full = np.load(kit.write_cs(tmp_path / "full.cs", table, project=tmp_path))
    ctf_fields = [name for name in full.dtype.names if name.startswith("ctf/")]
    main = recfunctions.repack_fields(full[[n for n in full.dtype.names if n not in ctf_fields]])
    passthrough = recfunctions.repack_fields(full[["uid", *ctf_fields]])[::-1]
    with open(tmp_path / "J5_particles.cs", "wb") as file:
        np.save(file, main)
    with open(tmp_path / "J5_passthrough_particles.cs", "wb") as file:
        np.save(file, passthrough)
    with pytest.raises(InputError, match="missing field ctf/df1_A"):
        read_particles(tmp_path / "J5_particles.cs")
    read = read_particles(
        tmp_path / "J5_particles.cs", ctf=tmp_path / "J5_passthrough_particles.cs"
    )
    kit.assert_same_particles(read, table, atol=2e-5)


def test_csdat_format_is_recognised_with_a_clear_message(tmp_path):
    # cryosparc-tools' Dataset.save(format=CSDAT_FORMAT): magic b"\x95CSDAT", a u32
    # header length, a JSON header, then the (LZ4-compressed) columns and a string heap.
    header = b'{"length": 2, "dtype": [["uid", "<u8"]], "compression": "lz4"}'
    path = tmp_path / "J9_particles.cs"
    path.write_bytes(b"\x95CSDAT" + len(header).to_bytes(4, "little") + header + b"\0" * 16)
    with pytest.raises(InputError) as info:
        read_particles(path)
    message = str(info.value)
    assert str(path) in message and "CSDAT" in message and "NumPy .npy" in message
    assert "Dataset.load" in message and "\n" not in message


def test_npz_archive_is_not_taken_for_a_cs_file(tmp_path):
    path = tmp_path / "particles.cs"
    with open(path, "wb") as file:
        np.savez(file, a=np.zeros(3))
    with pytest.raises(InputError, match="zip archive"):
        read_particles(path)


def _without(cs_path, names):
    full = np.load(cs_path)
    kept = recfunctions.repack_fields(full[[n for n in full.dtype.names if n not in names]])
    with open(cs_path, "wb") as file:
        np.save(file, kept)


def test_cs_optics_fields_missing_or_overridden(tmp_path, two_groups, kit, caplog):
    table, _ = two_groups
    cs = kit.write_cs(tmp_path / "particles.cs", table, project=tmp_path)
    with caplog.at_level("WARNING"):
        read = read_particles(cs, amplitude_contrast=0.2)
    np.testing.assert_allclose(read.ctf[:, 5], 0.2)
    assert any("ctf/amp_contrast 0.1" in r.getMessage() for r in caplog.records)
    _without(cs, ["ctf/amp_contrast", "ctf/accel_kv"])
    with pytest.raises(InputError, match="missing field ctf/accel_kv.*--voltage"):
        read_particles(cs)
    caplog.clear()
    with caplog.at_level("WARNING"):
        read = read_particles(cs, voltage=300.0)
    np.testing.assert_array_equal(read.ctf[:, 5], 0.0)  # RELION's default
    np.testing.assert_array_equal(read.ctf[:, 3], 300.0)
    assert any("--amplitude-contrast" in r.getMessage() for r in caplog.records)


def test_cs_unmodelled_aberrations_give_one_warning(tmp_path, two_groups, kit, caplog):
    table, _ = two_groups
    cs = kit.write_cs(tmp_path / "particles.cs", table, project=tmp_path)
    full = np.load(cs)
    extra = np.zeros(len(full), dtype=[("ctf/tilt_A", "<f4", (2,)), ("ctf/tetra_A", "<f4", (4,))])
    extra["ctf/tilt_A"][2] = [0.1, 0.0]
    merged = recfunctions.merge_arrays([full, extra], flatten=True)
    with open(cs, "wb") as file:
        np.save(file, merged)
    with caplog.at_level("WARNING"):
        read_particles(cs)
    (warning,) = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    assert "ctf/tilt_A" in warning and "ctf/tetra_A" not in warning and str(cs) in warning

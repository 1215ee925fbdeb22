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

"""Small synthetic particle datasets written in tmp_path, shared by the data tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import mrcfile
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.data.particles import ParticleTable
from cryomotion.data.poses import (
    matrix_to_cryosparc_pose,
    shift_to_cryodrgn_trans,
    shift_to_origin,
)
from cryomotion.imaging.ctf import CTF_FIELDS

BOX = 16


def write_mrcs(path: Path, images: np.ndarray, voxel_size: float = 0.0) -> Path:
    """Write images (n, box, box) as an MRC stack in their own dtype."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, data=images, overwrite=True) as mrc:
        mrc.set_image_stack()
        mrc.voxel_size = voxel_size
    return path


def make_table(folder: Path, groups=((1.5, 300.0, 2.7),), per_stack: int = 3, seed: int = 0):
    """Stacks in ``folder/Extract`` and the ParticleTable describing them.

    One stack per optics group; ``groups`` holds (pixel size Å, voltage kV, Cs mm).
    Returns (table, images) with images (N, BOX, BOX) float32 in table order.
    """
    rng = np.random.default_rng(seed)
    files, indices, pixel, ctf, optics, images = [], [], [], [], [], []
    for group, (pixel_size, voltage, cs) in enumerate(groups, start=1):
        stack = rng.normal(size=(per_stack, BOX, BOX)).astype(np.float32)
        path = write_mrcs(folder / "Extract" / f"stack{group}.mrcs", stack, pixel_size)
        for k in range(per_stack):
            files.append(str(path.resolve()))
            indices.append(k)
            pixel.append(pixel_size)
            optics.append(group)
            defocus_u = rng.uniform(10000, 25000)
            ctf.append(
                [
                    defocus_u,
                    defocus_u - rng.uniform(0, 500),
                    rng.uniform(-180, 180),
                    voltage,
                    cs,
                    0.1,
                    rng.uniform(0, 90),
                    rng.uniform(0, 50),
                ]
            )
        images.append(stack)
    n = len(files)
    rotations = Rotation.random(n, random_state=seed).as_matrix()
    table = ParticleTable(
        rotations=rotations,
        shifts=rng.uniform(-5, 5, size=(n, 2)),
        ctf=np.array(ctf),
        pixel_size=np.array(pixel),
        box_size=BOX,
        image_files=np.array(files, dtype=object),
        image_indices=np.array(indices),
        optics_group=np.array(optics),
        source="synthetic",
    )
    return table, np.concatenate(images)


def write_cs(path: Path, table: ParticleTable, project: Path) -> Path:
    """Write ``table`` as a cryoSPARC particle .cs with blob/path relative to ``project``."""
    field = {name: k for k, name in enumerate(CTF_FIELDS)}
    n = len(table)
    names = [str(Path(f).relative_to(project.resolve())).encode() for f in table.image_files]
    dtype = [
        ("uid", "<u8"),
        ("blob/path", f"S{max(len(s) for s in names) + 1}"),
        ("blob/idx", "<u4"),
        ("blob/shape", "<u4", (2,)),
        ("blob/psize_A", "<f4"),
        ("alignments3D/pose", "<f4", (3,)),
        ("alignments3D/shift", "<f4", (2,)),
        ("ctf/df1_A", "<f4"),
        ("ctf/df2_A", "<f4"),
        ("ctf/df_angle_rad", "<f4"),
        ("ctf/accel_kv", "<f4"),
        ("ctf/cs_mm", "<f4"),
        ("ctf/amp_contrast", "<f4"),
        ("ctf/phase_shift_rad", "<f4"),
        ("ctf/bfactor", "<f4"),
        ("ctf/exp_group_id", "<u4"),
    ]
    cs = np.zeros(n, dtype=dtype)
    cs["uid"] = np.arange(n) + 1000
    cs["blob/path"] = [b">" + s for s in names]
    cs["blob/idx"] = table.image_indices
    cs["blob/shape"] = table.box_size
    cs["blob/psize_A"] = table.pixel_size
    cs["alignments3D/pose"] = matrix_to_cryosparc_pose(table.rotations)
    cs["alignments3D/shift"] = shift_to_origin(table.shifts) / table.pixel_size[:, None]
    cs["ctf/df1_A"] = table.ctf[:, field["defocus_u"]]
    cs["ctf/df2_A"] = table.ctf[:, field["defocus_v"]]
    cs["ctf/df_angle_rad"] = np.deg2rad(table.ctf[:, field["defocus_angle"]])
    cs["ctf/accel_kv"] = table.ctf[:, field["voltage"]]
    cs["ctf/cs_mm"] = table.ctf[:, field["spherical_aberration"]]
    cs["ctf/amp_contrast"] = table.ctf[:, field["amplitude_contrast"]]
    cs["ctf/phase_shift_rad"] = np.deg2rad(table.ctf[:, field["phase_shift"]])
    cs["ctf/bfactor"] = table.ctf[:, field["b_factor"]]
    cs["ctf/exp_group_id"] = table.optics_group
    with open(path, "wb") as file:  # cryoSPARC saves with np.save to an open file
        np.save(file, cs)
    return path


def write_cryodrgn_pkls(folder: Path, table: ParticleTable, protocol: int = 4):
    """cryoDRGN poses.pkl and ctf.pkl of ``table`` (B-factor is not in ctf.pkl)."""
    trans = shift_to_cryodrgn_trans(table.shifts, table.box_size, table.pixel_size)
    poses = folder / "poses.pkl"
    with open(poses, "wb") as file:
        pickle.dump((table.rotations.astype(np.float32), trans.astype(np.float32)), file, protocol)
    ctf = np.column_stack(
        [np.full(len(table), table.box_size), table.pixel_size, table.ctf[:, :7]]
    ).astype(np.float32)
    ctf_path = folder / "ctf.pkl"
    with open(ctf_path, "wb") as file:
        pickle.dump(ctf, file, protocol)
    return poses, ctf_path


def assert_same_particles(
    a: ParticleTable, b: ParticleTable, atol: float = 1e-6, optics: bool = True
) -> None:
    """Every field of two tables equal (floats to ``atol``; optics groups if ``optics``)."""
    assert len(a) == len(b) and a.box_size == b.box_size
    np.testing.assert_allclose(a.rotations, b.rotations, atol=atol)
    np.testing.assert_allclose(a.shifts, b.shifts, atol=atol)
    np.testing.assert_allclose(a.ctf, b.ctf, atol=atol, rtol=1e-6)
    np.testing.assert_allclose(a.pixel_size, b.pixel_size, atol=atol)
    assert list(a.image_files) == list(b.image_files)
    np.testing.assert_array_equal(a.image_indices, b.image_indices)
    if optics:
        np.testing.assert_array_equal(a.optics_group, b.optics_group)


@pytest.fixture
def kit():
    """The writers and checks above, for tests to build their own inputs."""
    return SimpleNamespace(
        make_table=make_table,
        write_mrcs=write_mrcs,
        write_cs=write_cs,
        write_cryodrgn_pkls=write_cryodrgn_pkls,
        assert_same_particles=assert_same_particles,
    )


@pytest.fixture
def two_groups(tmp_path):
    """(table, images): six particles in two optics groups of different pixel size,
    voltage and Cs, stacks in tmp_path/Extract."""
    return make_table(tmp_path, groups=((1.5, 300.0, 2.7), (1.2, 200.0, 2.0)))

"""cryoSPARC particle files (``.cs``): a NumPy structured array, one row per particle.

Fields read (cryoSPARC names): ``blob/path`` (stack, relative to the cryoSPARC project
directory; a leading ``>`` is dropped), ``blob/idx`` (0-based), ``blob/shape`` (box),
``blob/psize_A`` (Å/px), ``alignments3D/pose`` (rotation vector, radians),
``alignments3D/shift`` (pixels), ``ctf/df1_A``, ``ctf/df2_A``, ``ctf/df_angle_rad``,
``ctf/accel_kv``, ``ctf/cs_mm``, ``ctf/amp_contrast``, and when present
``ctf/phase_shift_rad``, ``ctf/bfactor`` and ``ctf/exp_group_id`` (optics group).
A refinement job often keeps the CTF in a separate "passthrough" ``.cs``; pass it in
``passthrough`` and its fields fill the missing ones, matched by ``uid``.

A ``.cs`` file is what ``numpy.save`` writes (``cryosparc-tools`` ``Dataset.save`` with
its default ``NUMPY_FORMAT``); the newer compressed stream format of cryosparc-tools
(``CSDAT_FORMAT``, magic bytes ``\\x95CSDAT``, LZ4-compressed columns and a string heap) is
recognised and refused with a message saying how to convert it. Voltage, Cs and
amplitude contrast may be given by the caller where the file lacks them (or to replace
them); ``ctf/tilt_A``, ``ctf/trefoil_A``, ``ctf/tetra_A`` and ``ctf/anisomag`` (higher-order
aberrations, not modelled) are reported in one warning line when non-zero.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cryomotion.data.locations import (
    check_stacks,
    dataset_folder,
    resolve_stack_names,
)
from cryomotion.data.particles import OPTICS_FLAGS, ParticleTable, check_ctf, optics_values
from cryomotion.data.poses import cryosparc_pose_to_matrix, origin_to_shift
from cryomotion.errors import InputError

REQUIRED_FIELDS = (
    "blob/path",
    "blob/idx",
    "blob/shape",
    "blob/psize_A",
    "alignments3D/pose",
    "alignments3D/shift",
    "ctf/df1_A",
    "ctf/df2_A",
    "ctf/df_angle_rad",
)
# Fields the caller may give instead (read_cs keywords).
_OPTICS_FIELDS = {
    "voltage": "ctf/accel_kv",
    "spherical_aberration": "ctf/cs_mm",
    "amplitude_contrast": "ctf/amp_contrast",
}
# Aberrations cryoSPARC may refine that cryomotion's CTF does not model.
_IGNORED_FIELDS = ("ctf/tilt_A", "ctf/trefoil_A", "ctf/tetra_A", "ctf/anisomag")

log = logging.getLogger(__name__)

_NPY_MAGIC = b"\x93NUMPY"
_CSDAT_MAGIC = b"\x95CSDAT"
_ZIP_MAGIC = b"PK\x03\x04"

# Trailing shape of each numeric field per particle.
_FIELD_SHAPES = {"blob/shape": (2,), "alignments3D/pose": (3,), "alignments3D/shift": (2,)}


def load_cs(path: str | os.PathLike) -> np.ndarray:
    """The structured array (N,) of a ``.cs`` file, read without unpickling."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: cryoSPARC file not found")
    with open(path, "rb") as file:
        magic = file.read(len(_NPY_MAGIC))
    if magic == _CSDAT_MAGIC:
        raise InputError(
            f"{path}: cryoSPARC .cs file in the compressed CSDAT format of cryosparc-tools, "
            "which cryomotion does not read; expected the NumPy .npy format (cryoSPARC's "
            "default): convert it with cryosparc-tools, "
            "Dataset.load('in.cs').save('out.cs') (format NUMPY_FORMAT, the default)"
        )
    if magic.startswith(_ZIP_MAGIC):
        raise InputError(
            f"{path}: a zip archive (NumPy .npz?), not a cryoSPARC .cs file; expected the "
            "NumPy .npy structured array cryoSPARC writes"
        )
    if magic != _NPY_MAGIC:
        raise InputError(
            f"{path}: not a cryoSPARC .cs file (expected NumPy .npy content, magic "
            f"{_NPY_MAGIC!r}, or the CSDAT format {_CSDAT_MAGIC!r}; found {magic!r})"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"{path}: the .cs file holds Python objects (pickled fields); expected "
                "fixed-size numeric and byte-string fields, as cryoSPARC and "
                "cryosparc-tools (Dataset.save) write them"
            ) from exc
        raise InputError(
            f"{path}: unreadable cryoSPARC .cs file ({exc}); expected a structured array "
            "of numbers and byte strings"
        ) from exc
    if not isinstance(array, np.ndarray) or array.dtype.names is None or array.ndim != 1:
        raise InputError(f"{path}: not a cryoSPARC .cs file; expected a 1-D structured array")
    return array


def _fields(path: Path, passthrough: Sequence) -> dict[str, np.ndarray]:
    particles = load_cs(path)
    fields = {name: particles[name] for name in particles.dtype.names}
    for extra_path in passthrough:
        extra = load_cs(extra_path)
        new = [name for name in extra.dtype.names if name not in fields]
        if not new:
            continue
        if "uid" not in fields or "uid" not in extra.dtype.names:
            raise InputError(f"{extra_path}: missing field uid; needed to match it with {path}")
        rows = pd.Index(extra["uid"]).get_indexer(fields["uid"])
        if (rows < 0).any():
            uid = fields["uid"][np.flatnonzero(rows < 0)[0]]
            raise InputError(f"{extra_path}: no row with uid {uid} of {path}")
        fields.update({name: extra[name][rows] for name in new})
    return fields


def _numbers(fields: dict, name: str, path: Path, default: float | None = None) -> np.ndarray:
    n = len(fields["blob/idx"])
    if name not in fields:
        if default is None:
            raise InputError(
                f"{path}: missing field {name}; expected a cryoSPARC particle .cs "
                "(give the job's passthrough .cs too if the field is there)"
            )
        return np.full(n, default, dtype=np.float64)
    try:
        values = np.asarray(fields[name], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: field {name} is not numeric ({exc})") from exc
    shape = (n,) + _FIELD_SHAPES.get(name, ())
    if values.shape != shape:
        raise InputError(f"{path}: field {name} has shape {values.shape}; expected {shape}")
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values.reshape(n, -1)).all(-1))[0])
        raise InputError(f"{path}: field {name} of row {row} is not finite")
    return values


def read_cs(
    path: str | os.PathLike,
    pixel_size: float | None = None,
    dataset_dir=None,
    passthrough: Sequence = (),
    *,
    amplitude_contrast: float | None = None,
    voltage: float | None = None,
    spherical_aberration: float | None = None,
) -> ParticleTable:
    """Read a cryoSPARC particle ``.cs`` file.

    Parameters
    ----------
    path : the particles ``.cs``.
    pixel_size : Å/px; if given it replaces ``blob/psize_A`` (with a warning where they
        differ).
    dataset_dir : the cryoSPARC project directory ``blob/path`` is relative to; default
        the ``.cs`` file's folder.
    passthrough : further ``.cs`` files whose fields fill missing ones (matched by uid).
    amplitude_contrast, voltage (kV), spherical_aberration (mm) : replace the file's
        ``ctf/amp_contrast``, ``ctf/accel_kv``, ``ctf/cs_mm`` (with a warning where they
        differ) or give them where it has none; a missing amplitude contrast is RELION's
        default 0, with a warning.
    """
    path = Path(path)
    fields = _fields(path, passthrough)
    for name in REQUIRED_FIELDS:
        if name not in fields:
            _numbers(fields, name, path)  # raises the missing-field error
    n = len(fields["blob/idx"])
    if n == 0:
        raise InputError(f"{path}: no particles")
    pixel = _numbers(fields, "blob/psize_A", path)
    if np.any(pixel <= 0):
        raise InputError(f"{path}: field blob/psize_A must be positive")
    pixel_field = "blob/psize_A"
    if pixel_size is not None:
        if not pixel_size > 0:
            raise InputError(f"--pixel-size {pixel_size}: expected a positive pixel size (Å)")
        pixel = optics_values(pixel, pixel_size, "pixel_size", "blob/psize_A", str(path), n)
        pixel_field = "the given pixel size (--pixel-size)"
    shape = _numbers(fields, "blob/shape", path)
    if np.any(shape != shape[0]) or shape[0, 0] != shape[0, 1]:
        raise InputError(f"{path}: field blob/shape varies or is not square; expected one box")
    indices = _numbers(fields, "blob/idx", path).astype(np.int64)
    base = dataset_folder(path, dataset_dir)
    raw = fields["blob/path"]
    codes, uniques = pd.factorize(pd.Series(raw, dtype=object))
    names = [_decode(value, path).lstrip(">") for value in uniques]
    files = resolve_stack_names(
        np.asarray(names, dtype=object)[codes], base, str(path), "blob/path"
    )
    box = check_stacks(files, indices, pixel, str(path), pixel_field)
    if box != int(shape[0, 0]):
        raise InputError(
            f"{path}: blob/shape {int(shape[0, 0])} differs from the stacks' box {box}"
        )
    degrees = np.rad2deg
    overrides = {
        "amplitude_contrast": amplitude_contrast,
        "voltage": voltage,
        "spherical_aberration": spherical_aberration,
    }
    labels = {
        "defocus_u": "ctf/df1_A",
        "defocus_v": "ctf/df2_A",
        "defocus_angle": "ctf/df_angle_rad",
        "phase_shift": "ctf/phase_shift_rad",
        "b_factor": "ctf/bfactor",
    }
    optics = {}
    for name, field in _OPTICS_FIELDS.items():
        present = _numbers(fields, field, path) if field in fields else None
        label = f"field {field}" if present is not None else f"field {field} (missing)"
        optics[name] = optics_values(present, overrides[name], name, label, str(path), n)
        labels[name] = f"{OPTICS_FLAGS[name]} (given)" if overrides[name] is not None else field
    ctf = np.stack(
        [
            _numbers(fields, "ctf/df1_A", path),
            _numbers(fields, "ctf/df2_A", path),
            degrees(_numbers(fields, "ctf/df_angle_rad", path)),
            optics["voltage"],
            optics["spherical_aberration"],
            optics["amplitude_contrast"],
            degrees(_numbers(fields, "ctf/phase_shift_rad", path, default=0.0)),
            _numbers(fields, "ctf/bfactor", path, default=0.0),
        ],
        axis=-1,
    )
    check_ctf(ctf, str(path), labels)
    _warn_ignored(fields, path)
    shift_pixels = _numbers(fields, "alignments3D/shift", path)
    return ParticleTable(
        rotations=cryosparc_pose_to_matrix(_numbers(fields, "alignments3D/pose", path)),
        shifts=origin_to_shift(shift_pixels * pixel[:, None]),
        ctf=ctf,
        pixel_size=pixel,
        box_size=box,
        image_files=files,
        image_indices=indices,
        optics_group=_numbers(fields, "ctf/exp_group_id", path, default=1.0).astype(np.int64),
        source=str(path),
    )


def _decode(value, path: Path) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: field blob/path is not UTF-8 text ({exc})") from exc
    return str(value)


def _warn_ignored(fields: dict, path: Path) -> None:
    """One warning line naming the non-zero aberration fields that are not modelled."""
    ignored = []
    for name in _IGNORED_FIELDS:
        if name not in fields:
            continue
        try:
            values = np.asarray(fields[name], dtype=np.float64)
        except (TypeError, ValueError):
            ignored.append(name)
            continue
        if name == "ctf/anisomag":  # 2x2 magnification matrix minus identity, or 4 values
            values = values.reshape(len(values), -1)
            if values.shape[1] == 4:
                neutral = np.zeros(4) if np.allclose(values[:, [0, 3]], 0) else [1, 0, 0, 1]
                values = values - np.asarray(neutral)
        if np.any(np.abs(np.nan_to_num(values, nan=1.0)) > 1e-9):
            ignored.append(name)
    if ignored:
        log.warning(
            "%s: ignoring %s (beam tilt, trefoil, tetrafoil or anisotropic magnification "
            "refined by cryoSPARC); cryomotion's CTF does not model them",
            path,
            ", ".join(ignored),
        )

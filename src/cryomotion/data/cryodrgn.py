"""cryoDRGN pose and CTF pickles (``poses.pkl``, ``ctf.pkl``), read without trusting them.

``poses.pkl`` is a tuple ``(rot, trans)``: ``rot`` (N, 3, 3) is RELION's matrix ``A``
(cryoDRGN's parse_pose_star builds it from the Euler angles), ``trans`` (N, 2) is the
RELION origin in fractions of the box (``rlnOrigin`` in pixels / D). A bare ``rot`` array,
or a one-element tuple, means zero translations.

``ctf.pkl`` is an (N, 9) array: box D (px), pixel size (Å/px), defocus_u (Å),
defocus_v (Å), defocus_angle (degrees), voltage (kV), Cs (mm), amplitude contrast,
phase shift (degrees). D and the pixel size are those of the images the CTF was parsed
for; cryoDRGN's documented workflow downsamples the stack afterwards (``cryodrgn
downsample``) and keeps the pickles, so a stack of box D' < D is read with pixel size
``pixel_size · D / D'``, as cryoDRGN's ``ctf.load_ctf_for_training`` rescales it. The
translations, fractions of the box, need no rescaling.

cryoDRGN multiplies its CTF by -1 relative to RELION's and inverts the images by default
instead; cryomotion keeps RELION's CTF sign, so images of a RELION-extracted stack
(white particles) are used as they are, and the dataset's ``invert_contrast`` option is
for stacks with dark particles.

Pickles are opened with :class:`SafeUnpickler`, which builds nothing but NumPy arrays,
dtypes and scalars inside tuples, lists and dicts; any other object is refused before it
is created, so a malicious pickle cannot run code.
"""

from __future__ import annotations

import codecs
import importlib
import logging
import os
import pickle
from pathlib import Path

import numpy as np

from cryomotion.data.locations import ImageLocations, check_stacks
from cryomotion.data.particles import OPTICS_FLAGS, ParticleTable, check_ctf, optics_values
from cryomotion.data.poses import cryodrgn_trans_to_shift
from cryomotion.data.stack import read_stack_header
from cryomotion.errors import InputError

log = logging.getLogger(__name__)

# ctf.pkl columns (0-based) of the fields a caller may override.
_OVERRIDE_COLUMNS = {"voltage": 5, "spherical_aberration": 6, "amplitude_contrast": 7}
# How each CTF field is named in messages about a ctf.pkl (1-based columns).
_CTF_LABELS = {
    "defocus_u": "column 3 (defocus U)",
    "defocus_v": "column 4 (defocus V)",
    "defocus_angle": "column 5 (defocus angle)",
    "voltage": "column 6 (voltage)",
    "spherical_aberration": "column 7 (Cs)",
    "amplitude_contrast": "column 8 (amplitude contrast)",
    "phase_shift": "column 9 (phase shift)",
    "b_factor": "the B-factor",
}


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin1."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("refused _codecs.encode other than str to latin1")
    return codecs.encode(text, "latin1")


# (module, name) a pickle may reference -> where it is found in this NumPy.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): None,
}
for _old, _new in (("numpy.core", "numpy._core"), ("numpy._core", "numpy._core")):
    _ALLOWED_GLOBALS[(f"{_old}.multiarray", "_reconstruct")] = (
        f"{_new}.multiarray",
        "_reconstruct",
    )
    _ALLOWED_GLOBALS[(f"{_old}.multiarray", "scalar")] = (f"{_new}.multiarray", "scalar")
    _ALLOWED_GLOBALS[(f"{_old}.numeric", "_frombuffer")] = (f"{_new}.numeric", "_frombuffer")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the NumPy globals needed to rebuild arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        target = _ALLOWED_GLOBALS[(module, name)]
        if target is None:
            return _latin1_encode
        target_module, target_name = target
        if not hasattr(np, "_core"):  # NumPy 1.x
            target_module = target_module.replace("numpy._core", "numpy.core")
        return getattr(importlib.import_module(target_module), target_name)


def load_pickle_safely(path: str | os.PathLike):
    """Unpickle ``path`` allowing only NumPy arrays/scalars in tuples, lists and dicts."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: pickle file not found")
    try:
        with open(path, "rb") as file:
            return SafeUnpickler(file).load()
    except Exception as exc:  # untrusted bytes: every failure is the file's fault
        raise InputError(
            f"{path}: refused or unreadable pickle ({type(exc).__name__}: {exc}); "
            "expected NumPy arrays only"
        ) from exc


def _numeric_array(value, path: Path, what: str, shape_text: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise InputError(
            f"{path}: {what} is {type(value).__name__}; expected a numeric array {shape_text}"
        )
    array = value.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError(f"{path}: {what} holds NaN or infinite values")
    return array


def read_poses_pkl(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """cryoDRGN poses: rotations (N, 3, 3) and translations (N, 2) in box fractions or None."""
    path = Path(path)
    content = load_pickle_safely(path)
    if isinstance(content, np.ndarray):
        content = (content,)
    if not isinstance(content, tuple | list) or len(content) not in (1, 2):
        raise InputError(f"{path}: expected a tuple (rot (N, 3, 3), trans (N, 2))")
    rot = _numeric_array(content[0], path, "rot", "(N, 3, 3)")
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise InputError(f"{path}: rot has shape {rot.shape}; expected (N, 3, 3)")
    identity = np.einsum("nij,nkj->nik", rot, rot) - np.eye(3)
    if np.abs(identity).max(initial=0.0) > 1e-3 or np.any(np.linalg.det(rot) < 0):
        raise InputError(f"{path}: rot holds matrices that are not rotations")
    if len(content) == 1:
        return rot, None
    trans = _numeric_array(content[1], path, "trans", "(N, 2)")
    if trans.shape != (len(rot), 2):
        raise InputError(f"{path}: trans has shape {trans.shape}; expected ({len(rot)}, 2)")
    return rot, trans


def read_ctf_pkl(path: str | os.PathLike) -> np.ndarray:
    """cryoDRGN CTF parameters (N, 9) float64 (column order in the module docstring)."""
    path = Path(path)
    ctf = _numeric_array(load_pickle_safely(path), path, "the CTF table", "(N, 9)")
    if ctf.ndim != 2 or ctf.shape[1] != 9:
        raise InputError(
            f"{path}: CTF table has shape {ctf.shape}; expected (N, 9): D, pixel size, "
            "defocus U, defocus V, defocus angle, voltage, Cs, amplitude contrast, phase shift"
        )
    return ctf


def read_cryodrgn(
    locations: ImageLocations,
    poses: str | os.PathLike,
    ctf: str | os.PathLike,
    pixel_size: float | None = None,
    *,
    amplitude_contrast: float | None = None,
    voltage: float | None = None,
    spherical_aberration: float | None = None,
) -> ParticleTable:
    """Particles whose images are at ``locations`` with poses and CTF from cryoDRGN pickles.

    The pixel size comes from ``ctf.pkl``, rescaled to the stacks' box when the pickle
    was made for another box (``pixel_size · D / box``, as cryoDRGN does for downsampled
    stacks); ``pixel_size``, if given, replaces it (with a warning where they differ).
    ``amplitude_contrast``, ``voltage`` (kV) and ``spherical_aberration`` (mm), if given,
    replace the pickle's columns likewise.
    """
    n = len(locations)
    rot, trans = read_poses_pkl(poses)
    ctf_table = read_ctf_pkl(ctf)
    for name, count in ((poses, len(rot)), (ctf, len(ctf_table))):
        if count != n:
            raise InputError(f"{name}: holds {count} particles but {locations.source} has {n}")
    ctf_box, ctf_pixel = ctf_table[:, 0], ctf_table[:, 1]
    for column, values, what in ((1, ctf_box, "box sizes"), (2, ctf_pixel, "pixel sizes")):
        if np.any(values <= 0):
            row = int(np.flatnonzero(values <= 0)[0])
            raise InputError(f"{ctf}: {what} (column {column}) must be positive; row {row + 1}")
    if np.any(ctf_box != np.round(ctf_box)):
        raise InputError(f"{ctf}: box sizes (column 1) must be whole numbers of pixels")
    box = check_stacks(
        locations.image_files,
        locations.image_indices,
        ctf_pixel * ctf_box / (_stack_box(locations) if n else 1),
        locations.source,
        pixel_size_field=f"the pixel size from {ctf}",
    )
    pixel = ctf_pixel * ctf_box / box
    if np.any(ctf_box != box):
        log.info(
            "%s: CTF parameters for a %g-pixel box, stacks of %d pixels: pixel size %g Å "
            "rescaled to %g Å (as cryoDRGN does for downsampled stacks)",
            ctf,
            ctf_box[0],
            box,
            ctf_pixel[0],
            pixel[0],
        )
    if pixel_size is not None:
        if not pixel_size > 0:
            raise InputError(f"--pixel-size {pixel_size}: expected a positive pixel size (Å)")
        pixel = optics_values(pixel, pixel_size, "pixel_size", "pixel size", str(ctf), n)
    ctf_values = np.column_stack([ctf_table[:, 2:9], np.zeros(n)])
    labels = dict(_CTF_LABELS)
    overrides = {
        "amplitude_contrast": amplitude_contrast,
        "voltage": voltage,
        "spherical_aberration": spherical_aberration,
    }
    for name, column in _OVERRIDE_COLUMNS.items():
        if overrides[name] is not None:
            ctf_values[:, column - 2] = optics_values(
                ctf_table[:, column], overrides[name], name, labels[name], str(ctf), n
            )
            labels[name] = f"{OPTICS_FLAGS[name]} (given)"
    check_ctf(ctf_values, str(ctf), labels)
    shifts = np.zeros((n, 2)) if trans is None else cryodrgn_trans_to_shift(trans, box, pixel)
    groups = locations.optics_group
    return ParticleTable(
        rotations=rot,
        shifts=shifts,
        ctf=ctf_values,
        pixel_size=pixel,
        box_size=box,
        image_files=locations.image_files,
        image_indices=locations.image_indices,
        optics_group=np.ones(n, dtype=np.int64) if groups is None else groups,
        source=locations.source,
        star=locations.star,
    )


def _stack_box(locations: ImageLocations) -> int:
    """The box of the first stack (check_stacks then checks that all stacks agree)."""
    return read_stack_header(locations.image_files[0]).box

"""The one particle table every reader returns: poses, shifts, CTF and image locations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import CTF_FIELDS

log = logging.getLogger(__name__)

# Relative tolerance under which two pixel sizes count as the same.
_SAME_PIXEL_SIZE = 1e-6

# The command-line flag that gives each optics value when a file lacks it (or to override it).
OPTICS_FLAGS = {
    "pixel_size": "--pixel-size",
    "voltage": "--voltage",
    "spherical_aberration": "--spherical-aberration",
    "amplitude_contrast": "--amplitude-contrast",
}

# RELION's value for a missing amplitude contrast (CTF::readByGroup reads rlnAmplitudeContrast
# with default Q0 = 0, src/ctf.cpp).
RELION_DEFAULT_AMPLITUDE_CONTRAST = 0.0

# Physical ranges of the CTF fields; values outside are refused as misread or mistyped.
_DEFOCUS_LIMIT = 1e6  # Å (100 µm)
_VOLTAGE_RANGE = (0.0, 3000.0)  # kV, exclusive of 0 (a value in volts is caught too)
_CS_RANGE = (-0.1, 20.0)  # mm (a Cs corrector leaves a small residue of either sign)
_AMPLITUDE_RANGE = (0.0, 1.0)  # fraction


@dataclass(frozen=True, eq=False)
class ParticleTable:
    """Per-particle poses, CTF parameters and image locations of one dataset.

    Attributes
    ----------
    rotations : (N, 3, 3) float64
        Pose ``R`` mapping model coordinates into the microscope frame (RELION's ``A``).
    shifts : (N, 2) float64
        ``(x, y)`` in Å; the particle image is the projection translated by ``+shift``.
    ctf : (N, 8) float64
        CTF parameters in ``CTF_FIELDS`` order (defocus_u Å, defocus_v Å,
        defocus_angle degrees, voltage kV, spherical_aberration mm, amplitude_contrast,
        phase_shift degrees, b_factor Å²).
    pixel_size : (N,) float64
        Å per pixel of each particle's image (per optics group).
    box_size : int
        Side of the square images in pixels, shared by all particles.
    image_files : (N,) object array of str
        Absolute path of the stack holding each image.
    image_indices : (N,) int64
        0-based index of the image in its stack.
    optics_group : (N,) int64
        Optics group number as in the file (RELION's 1-based ``rlnOpticsGroup``,
        cryoSPARC's ``ctf/exp_group_id``; 1 where the source has none).
    source : str
        The file that was read.
    star : dict or None
        The raw STAR blocks (pandas DataFrames, or dicts for simple blocks) when read
        from a STAR file; their particle rows are the table's rows, in order.
    """

    rotations: np.ndarray
    shifts: np.ndarray
    ctf: np.ndarray
    pixel_size: np.ndarray
    box_size: int
    image_files: np.ndarray
    image_indices: np.ndarray
    optics_group: np.ndarray
    source: str
    star: dict | None = None

    def __post_init__(self):
        n = len(np.asarray(self.image_indices))
        expected = {
            "rotations": ((n, 3, 3), np.float64),
            "shifts": ((n, 2), np.float64),
            "ctf": ((n, len(CTF_FIELDS)), np.float64),
            "pixel_size": ((n,), np.float64),
            "image_indices": ((n,), np.int64),
            "optics_group": ((n,), np.int64),
        }
        for name, (shape, dtype) in expected.items():
            value = np.asarray(getattr(self, name), dtype=dtype)
            if value.shape != shape:
                raise ValueError(f"ParticleTable.{name} has shape {value.shape}, expected {shape}")
            object.__setattr__(self, name, value)
        files = np.asarray(self.image_files, dtype=object)
        if files.shape != (n,):
            raise ValueError(f"ParticleTable.image_files has shape {files.shape}, expected {(n,)}")
        object.__setattr__(self, "image_files", files)
        object.__setattr__(self, "box_size", int(self.box_size))
        if self.star is not None:
            rows = len(self.star[star_particle_block(self.star)])
            if rows != n:
                raise ValueError(f"ParticleTable.star has {rows} particle rows, expected {n}")

    def __len__(self) -> int:
        return len(self.image_indices)

    def subset(self, indices) -> ParticleTable:
        """The particles at ``indices`` (integer positions or a boolean mask of length N).

        The STAR particle rows are subset alongside, so that the subset can be written
        with all its original columns.
        """
        index = np.arange(len(self))[np.asarray(indices)]
        star = None
        if self.star is not None:
            block = star_particle_block(self.star)
            star = dict(self.star)
            star[block] = self.star[block].iloc[index].reset_index(drop=True)
        return replace(
            self,
            rotations=self.rotations[index],
            shifts=self.shifts[index],
            ctf=self.ctf[index],
            pixel_size=self.pixel_size[index],
            image_files=self.image_files[index],
            image_indices=self.image_indices[index],
            optics_group=self.optics_group[index],
            star=star,
        )

    @property
    def single_pixel_size(self) -> float:
        """The pixel size (Å/px) shared by all particles; InputError if they differ."""
        if len(self) == 0:
            raise InputError(f"{self.source}: no particles, so no pixel size")
        low, high = float(self.pixel_size.min()), float(self.pixel_size.max())
        if high - low > _SAME_PIXEL_SIZE * high:
            raise InputError(
                f"{self.source}: the particles have several pixel sizes ({low:g} to {high:g} Å);"
                " expected one (select one optics group or rescale the particles)"
            )
        return float(self.pixel_size[0])


def star_particle_block(star: dict) -> str:
    """Name of the particle loop in STAR blocks: ``particles`` (RELION 3.1+), else the
    first loop holding ``rlnImageName`` (RELION 3.0 files name it ``images`` or nothing).
    """
    if isinstance(star.get("particles"), pd.DataFrame):
        return "particles"
    for name, block in star.items():
        if isinstance(block, pd.DataFrame) and "rlnImageName" in block.columns:
            return name
    raise KeyError("no particle loop in the STAR blocks")


def optics_values(
    values: np.ndarray | None,
    override: float | None,
    name: str,
    label: str,
    source: str,
    n: int,
) -> np.ndarray:
    """The per-particle (N,) values of optics quantity ``name`` (a key of ``OPTICS_FLAGS``).

    ``values`` are the file's (``label`` names their column or field; None when absent),
    ``override`` the caller's. The override wins, with a warning where the file says
    otherwise. Without either, a missing amplitude contrast is RELION's default 0 (with a
    warning naming the flag); any other missing value is an InputError naming the column
    and the flag.
    """
    flag = OPTICS_FLAGS[name]
    if override is not None:
        override = float(override)
        if not np.isfinite(override):
            raise InputError(f"{flag} {override}: expected a finite number")
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            differ = np.abs(values - override) > _SAME_PIXEL_SIZE * max(abs(override), 1e-12)
            if differ.any():
                log.warning(
                    "%s: %s %s in the file replaced by the given %s %s",
                    source,
                    label,
                    _value_range(values),
                    flag,
                    f"{override:g}",
                )
        return np.full(n, override, dtype=np.float64)
    if values is not None:
        return np.asarray(values, dtype=np.float64)
    if name == "amplitude_contrast":
        log.warning(
            "%s: no %s; using RELION's default amplitude contrast %g (give %s to set it, "
            "e.g. %s 0.1 as cryoDRGN's -w default)",
            source,
            label,
            RELION_DEFAULT_AMPLITUDE_CONTRAST,
            flag,
            flag,
        )
        return np.full(n, RELION_DEFAULT_AMPLITUDE_CONTRAST, dtype=np.float64)
    raise InputError(f"{source}: missing {label}; give it with {flag}")


def _value_range(values: np.ndarray) -> str:
    low, high = float(np.min(values)), float(np.max(values))
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def check_ctf(ctf: np.ndarray, source: str, labels: dict[str, str]) -> None:
    """Refuse CTF parameters (N, 8) outside their physical range.

    ``labels`` names each field of ``CTF_FIELDS`` as the file calls it (its column or
    field name, or the flag that gave it). Raises an InputError naming the field and the
    row (1-based) for NaN or infinite values, |defocus| > 1e6 Å (100 µm), voltage not in
    (0, 3000] kV, Cs not in [-0.1, 20] mm and amplitude contrast not in [0, 1].
    """
    ctf = np.asarray(ctf, dtype=np.float64)
    index = {name: k for k, name in enumerate(CTF_FIELDS)}
    checks = [
        ("defocus_u", lambda v: np.abs(v) <= _DEFOCUS_LIMIT, "a defocus of at most 1e6 Å (100 µm)"),
        ("defocus_v", lambda v: np.abs(v) <= _DEFOCUS_LIMIT, "a defocus of at most 1e6 Å (100 µm)"),
        (
            "voltage",
            lambda v: (v > _VOLTAGE_RANGE[0]) & (v <= _VOLTAGE_RANGE[1]),
            "a positive acceleration voltage in kV (at most 3000)",
        ),
        (
            "spherical_aberration",
            lambda v: (v >= _CS_RANGE[0]) & (v <= _CS_RANGE[1]),
            "a spherical aberration in mm between -0.1 and 20",
        ),
        (
            "amplitude_contrast",
            lambda v: (v >= _AMPLITUDE_RANGE[0]) & (v <= _AMPLITUDE_RANGE[1]),
            "an amplitude contrast fraction between 0 and 1",
        ),
    ]
    for name in CTF_FIELDS:
        values = ctf[:, index[name]]
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{source}: {labels.get(name, name)} of row {row + 1} is {values[row]}; "
                "expected a finite number"
            )
    for name, ok, expected in checks:
        values = ctf[:, index[name]]
        bad = ~ok(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{source}: {labels.get(name, name)} of row {row + 1} is {values[row]:g}; "
                f"expected {expected}"
            )

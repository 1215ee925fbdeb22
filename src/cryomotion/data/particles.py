"""The one particle table every reader returns: poses, shifts, CTF and image locations."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import CTF_FIELDS

# Relative tolerance under which two pixel sizes count as the same.
_SAME_PIXEL_SIZE = 1e-6


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

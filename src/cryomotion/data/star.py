"""RELION STAR particle files: read (RELION 3.0 and 3.1/4/5) and write (RELION 3.1).

RELION 3.1+ files hold a ``data_optics`` loop (one row per optics group: pixel size,
box, voltage, Cs, amplitude contrast) and a ``data_particles`` loop with Å origins
(``rlnOriginXAngst/YAngst``). RELION 3.0 files hold one particle loop with everything
per particle, pixel origins (``rlnOriginX/Y``) and a pixel size given by
``rlnDetectorPixelSize`` (µm) × 10⁴ / ``rlnMagnification``, by ``rlnImagePixelSize``, or
by the caller. Any column is looked up first in the particle loop, then in the optics
group's row, so mixed files read too.

The pixel size is the metadata's (a stack header that disagrees is ignored with a
warning, as RELION does); a missing rlnAmplitudeContrast is RELION's default 0 (with a
warning naming ``--amplitude-contrast``). Sub-tomograms (``rlnImageDimensionality 3``) and
CTF-premultiplied particles (``rlnCtfDataAreCtfPremultiplied 1``) are refused; columns of
image formation that cryomotion's CTF does not model (magnification matrix, beam tilt,
odd and even Zernike terms) are reported in one warning line.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from cryomotion.atomic_write import atomic_path
from cryomotion.data.locations import (
    ImageLocations,
    check_stacks,
    dataset_folder,
    resolve_stack_names,
)
from cryomotion.data.particles import (
    OPTICS_FLAGS,
    ParticleTable,
    check_ctf,
    optics_values,
    star_particle_block,
)
from cryomotion.data.poses import euler_to_matrix, matrix_to_euler, origin_to_shift, shift_to_origin
from cryomotion.errors import InputError
from cryomotion.imaging.ctf import CTF_FIELDS

# Columns kept as text even when every value looks like a number.
_TEXT_COLUMNS = [
    "rlnImageName",
    "rlnMicrographName",
    "rlnOpticsGroupName",
    "rlnCtfImage",
    "rlnReferenceImage",
    "rlnOriginalParticleName",
    "rlnGroupName",
    "rlnMicrographMovieName",
    "rlnImageOriginalName",
]

log = logging.getLogger(__name__)

# STAR columns holding the CTF fields, and the default where a column is optional.
# RELION's B-factor label is rlnCtfBfactor; the spelling rlnCtfBFactor is read too.
_CTF_COLUMNS = {
    "defocus_u": ("rlnDefocusU", None),
    "defocus_v": ("rlnDefocusV", None),
    "defocus_angle": ("rlnDefocusAngle", None),
    "voltage": ("rlnVoltage", None),
    "spherical_aberration": ("rlnSphericalAberration", None),
    "amplitude_contrast": ("rlnAmplitudeContrast", None),
    "phase_shift": ("rlnPhaseShift", 0.0),
    "b_factor": ("rlnCtfBfactor", 0.0),
}
# Other spellings met in the wild, read when the RELION label is absent.
_ALIASES = {"rlnCtfBfactor": "rlnCtfBFactor"}

_RELION_31_VERSION = "# version 30001"

# CTF fields the caller may give (override), by keyword.
_OPTICS_OVERRIDES = ("voltage", "spherical_aberration", "amplitude_contrast")

# Columns of RELION's image formation that cryomotion's CTF does not model, and the value
# that makes each one a no-op.
_IGNORED_NUMERIC = {
    "rlnMagMat00": 1.0,
    "rlnMagMat01": 0.0,
    "rlnMagMat10": 0.0,
    "rlnMagMat11": 1.0,
    "rlnBeamTiltX": 0.0,
    "rlnBeamTiltY": 0.0,
}
_IGNORED_LISTS = ("rlnOddZernike", "rlnEvenZernike")


def read_star_blocks(path: str | os.PathLike) -> dict:
    """All data blocks of a STAR file: loops as DataFrames, simple blocks as dicts."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: STAR file not found")
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=_TEXT_COLUMNS)
    except Exception as exc:  # the parser's own errors (pandas, shlex, ...) mean a bad file
        where = _first_bad_row(path) or f"{type(exc).__name__}: {exc}"
        raise InputError(f"{path}: malformed STAR file ({where})") from exc
    if not blocks:
        raise InputError(f"{path}: no data_ block; expected a RELION STAR file")
    return blocks


def _first_bad_row(path: Path) -> str | None:
    """Where a loop row has the wrong number of fields, for the error message."""
    block, columns, in_header = None, 0, False
    with open(path, errors="replace") as file:
        for number, line in enumerate(file, start=1):
            text = line.strip()
            if text.startswith("data_"):
                block, columns, in_header = text, 0, False
            elif text.startswith("loop_"):
                columns, in_header = 0, True
            elif text.startswith("_") and in_header:
                columns += 1
            elif text and not text.startswith("#") and columns:
                in_header = False
                try:
                    fields = len(shlex.split(text))
                except ValueError:
                    return f"line {number}: unbalanced quotes"
                if fields != columns:
                    return f"line {number} in {block} has {fields} fields; expected {columns}"
    return None


class _StarParticles:
    """The particle loop of a STAR file, with per-particle lookup through optics groups."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.blocks = read_star_blocks(path)
        self.block = self._particle_block_name()
        self.particles = self.blocks[self.block]
        if len(self.particles) == 0:
            raise InputError(f"{self.path}: data_{self.block} has no particles")
        optics = self.blocks.get("optics")
        self.optics = (
            optics if isinstance(optics, pd.DataFrame) and self.block != "optics" else None
        )
        self.groups = self._optics_groups()

    def _particle_block_name(self) -> str:
        try:
            return star_particle_block(self.blocks)
        except KeyError:
            loops = [n for n, b in self.blocks.items() if isinstance(b, pd.DataFrame)]
            loops = [n for n in loops if n != "optics"] or loops
            if len(loops) == 1:  # a particle loop without rlnImageName: reported below
                return loops[0]
            raise InputError(
                f"{self.path}: no particle loop; expected a loop with column rlnImageName"
            ) from None

    def _optics_groups(self) -> np.ndarray:
        n = len(self.particles)
        if "rlnOpticsGroup" in self.particles.columns:
            groups = self._to_numbers(
                self.particles["rlnOpticsGroup"], "rlnOpticsGroup", self.block
            )
            if not np.all(groups == np.round(groups)):
                raise InputError(f"{self.path}: rlnOpticsGroup must hold whole numbers")
            groups = groups.astype(np.int64)
        elif self.optics is not None and len(self.optics) > 1:
            raise InputError(
                f"{self.path}: data_{self.block} lacks column rlnOpticsGroup but data_optics "
                "holds several groups; expected each particle's group"
            )
        elif self.optics is not None and "rlnOpticsGroup" in self.optics.columns:
            groups = np.full(n, int(self.optics["rlnOpticsGroup"].iloc[0]), dtype=np.int64)
        else:
            groups = np.ones(n, dtype=np.int64)
        if self.optics is not None:
            if "rlnOpticsGroup" not in self.optics.columns:
                raise InputError(f"{self.path}: data_optics lacks column rlnOpticsGroup")
            known = self._to_numbers(self.optics["rlnOpticsGroup"], "rlnOpticsGroup", "optics")
            numbers, counts = np.unique(known, return_counts=True)
            if np.any(counts > 1):
                rows = np.flatnonzero(known == numbers[counts > 1][0]) + 1
                raise InputError(
                    f"{self.path}: optics group {numbers[counts > 1][0]:g} appears in rows "
                    f"{rows[0]} and {rows[1]} of data_optics (column rlnOpticsGroup); "
                    "expected each group number once"
                )
            missing = np.setdiff1d(groups, known.astype(np.int64))
            if len(missing):
                raise InputError(
                    f"{self.path}: optics group {missing[0]} of data_{self.block} is not in "
                    "data_optics (column rlnOpticsGroup)"
                )
            self._optics_row = pd.Series(np.arange(len(known)), index=known.astype(np.int64))
        return groups

    def _to_numbers(self, column: pd.Series, name: str, block: str) -> np.ndarray:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{self.path}: column {name} of data_{block}, row {row + 1}, holds "
                f"{column.iloc[row]!r}; expected a number"
            )
        return values

    def has(self, name: str) -> bool:
        return name in self.particles.columns or (
            self.optics is not None and name in self.optics.columns
        )

    def numbers(self, name: str, default: float | None = None) -> np.ndarray:
        """Column ``name`` per particle (N,) float64, from the particles or their optics group."""
        if not self.has(name) and name in _ALIASES and self.has(_ALIASES[name]):
            name = _ALIASES[name]
        if name in self.particles.columns:
            return self._to_numbers(self.particles[name], name, self.block)
        if self.optics is not None and name in self.optics.columns:
            per_group = self._to_numbers(self.optics[name], name, "optics")
            return per_group[self._optics_row.loc[self.groups].to_numpy()]
        if default is not None:
            return np.full(len(self.particles), default, dtype=np.float64)
        where = f"data_{self.block}" + (" or data_optics" if self.optics is not None else "")
        raise InputError(f"{self.path}: missing column {name} in {where}")

    def image_locations(self, dataset_dir=None) -> ImageLocations:
        if "rlnImageName" not in self.particles.columns:
            raise InputError(f"{self.path}: missing column rlnImageName in data_{self.block}")
        names = self.particles["rlnImageName"]
        if names.isna().any():
            row = int(np.flatnonzero(names.isna().to_numpy())[0])
            raise InputError(f"{self.path}: rlnImageName of row {row + 1} is empty")
        names = names.astype(str).str.strip()
        has_index = names.str.contains("@", regex=False)
        split = names.str.split("@", n=1)
        numbers = pd.to_numeric(split.str[0].where(has_index, "1"), errors="coerce")
        numbers = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~(np.isfinite(numbers) & (numbers >= 1) & (numbers == np.round(numbers)))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{self.path}: rlnImageName of row {row + 1} is {names.iloc[row]!r}; "
                "expected NNNNNN@stack.mrcs with a 1-based image number"
            )
        stacks = split.str[-1].to_numpy(dtype=object)
        base = dataset_folder(self.path, dataset_dir)
        files = resolve_stack_names(stacks, base, self.path, "rlnImageName")
        return ImageLocations(
            image_files=files,
            image_indices=numbers.astype(np.int64) - 1,
            source=self.path,
            optics_group=self.groups,
            star=self.blocks,
        )

    def pixel_sizes(self, pixel_size: float | None) -> tuple[np.ndarray, str]:
        """Per-particle pixel size (N,) Å/px and where it came from.

        The file's (rlnImagePixelSize, or rlnDetectorPixelSize × 10⁴ / rlnMagnification);
        ``pixel_size``, if given, replaces it (with a warning where they differ).
        """
        values, field = None, "the pixel_size argument"
        if self.has("rlnImagePixelSize"):
            values, field = self.numbers("rlnImagePixelSize"), "rlnImagePixelSize"
        elif self.has("rlnDetectorPixelSize") and self.has("rlnMagnification"):
            values = 1e4 * self.numbers("rlnDetectorPixelSize") / self.numbers("rlnMagnification")
            field = "rlnDetectorPixelSize/rlnMagnification"
        elif pixel_size is None:
            raise InputError(
                f"{self.path}: no pixel size (missing column rlnImagePixelSize, or "
                "rlnDetectorPixelSize and rlnMagnification); pass pixel_size (--pixel-size)"
            )
        if values is not None and np.any(values <= 0):
            row = int(np.flatnonzero(values <= 0)[0])
            raise InputError(f"{self.path}: {field} of row {row + 1} must be positive")
        if pixel_size is not None:
            if not pixel_size > 0:
                raise InputError(f"--pixel-size {pixel_size}: expected a positive pixel size (Å)")
            values = optics_values(
                values, pixel_size, "pixel_size", field, self.path, len(self.particles)
            )
            field = "the given pixel size (--pixel-size)"
        return values, field

    def optional_numbers(self, name: str) -> np.ndarray | None:
        """Column ``name`` per particle, or None where the file lacks it."""
        return self.numbers(name) if self.has(name) or self.has(_ALIASES.get(name, name)) else None

    def check_supported(self) -> None:
        """Refuse what cryomotion cannot model; warn about ignored image-formation columns."""
        if self.has("rlnImageDimensionality"):
            dims = self.numbers("rlnImageDimensionality")
            if np.any(dims != 2):
                row = int(np.flatnonzero(dims != 2)[0])
                raise InputError(
                    f"{self.path}: rlnImageDimensionality of row {row + 1} is {dims[row]:g} "
                    "(sub-tomograms); expected 2: cryomotion handles 2-D particle images only"
                )
        if self.has("rlnCtfDataAreCtfPremultiplied"):
            premultiplied = self.numbers("rlnCtfDataAreCtfPremultiplied")
            if np.any(premultiplied != 0):
                row = int(np.flatnonzero(premultiplied != 0)[0])
                raise InputError(
                    f"{self.path}: rlnCtfDataAreCtfPremultiplied of row {row + 1} is "
                    f"{premultiplied[row]:g}; CTF-premultiplied particles are not supported "
                    "(expected 0: re-extract the particles without CTF premultiplication)"
                )
        ignored = []
        for name, neutral in _IGNORED_NUMERIC.items():
            if self.has(name) and np.any(np.abs(self.numbers(name) - neutral) > 1e-9):
                ignored.append(name)
        for name in _IGNORED_LISTS:
            if self.has(name) and not self._all_zero_lists(name):
                ignored.append(name)
        if ignored:
            log.warning(
                "%s: ignoring %s (magnification matrix, beam tilt or Zernike aberrations "
                "refined by RELION); cryomotion's CTF does not model them",
                self.path,
                ", ".join(ignored),
            )

    def _all_zero_lists(self, name: str) -> bool:
        """Whether every value of a list column such as rlnOddZernike is zero."""
        columns = [self.particles.get(name)]
        if self.optics is not None:
            columns.append(self.optics.get(name))
        for column in columns:
            if column is None:
                continue
            for text in column.astype(str):
                try:
                    values = [float(v) for v in text.strip("[]() ").split(",") if v.strip()]
                except ValueError:
                    return False
                if any(v != 0 for v in values):
                    return False
        return True


def star_image_locations(path: str | os.PathLike, dataset_dir=None) -> ImageLocations:
    """Only the image locations (and optics groups) of a STAR file's particles."""
    return _StarParticles(path).image_locations(dataset_dir)


def read_star(
    path: str | os.PathLike,
    pixel_size: float | None = None,
    dataset_dir=None,
    *,
    amplitude_contrast: float | None = None,
    voltage: float | None = None,
    spherical_aberration: float | None = None,
    require_angles: bool = True,
) -> ParticleTable:
    """Read a RELION 3.0 or 3.1+ particle STAR file.

    Parameters
    ----------
    path : STAR file.
    pixel_size : Å/px; needed where the file has none, and replaces the file's (with a
        warning) where both exist.
    dataset_dir : folder the image names are relative to (the RELION project
        directory); default the STAR file's folder. Absolute names are read as they are.
    amplitude_contrast, voltage (kV), spherical_aberration (mm) : replace the file's
        values (with a warning where they differ), or give them where it has none.
    require_angles : False accepts a file without rlnAngleRot/Tilt/Psi (for poses that are
        inferred, ``--pose-mode infer``): its rotations are then the identity.

    Required columns: rlnImageName, rlnAngleRot, rlnAngleTilt, rlnAnglePsi, rlnDefocusU,
    rlnDefocusV, rlnDefocusAngle, rlnVoltage and rlnSphericalAberration (per particle or
    per optics group; or the keyword arguments). A missing rlnAmplitudeContrast is
    RELION's default 0, with a warning. Origins are zero when absent; rlnPhaseShift and
    rlnCtfBfactor default to 0.
    """
    star = _StarParticles(path)
    star.check_supported()
    locations = star.image_locations(dataset_dir)
    pixel, pixel_field = star.pixel_sizes(pixel_size)
    angles = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
    if not any(star.has(name) for name in angles) and not require_angles:
        rotations = np.broadcast_to(np.eye(3), (len(star.particles), 3, 3)).copy()
    else:
        for name in angles:
            if not star.has(name):
                raise InputError(
                    f"{star.path}: missing column {name} in data_{star.block} (particles "
                    "without poses need a system that infers them: --pose-mode infer)"
                )
        rotations = euler_to_matrix(*(star.numbers(name) for name in angles))
    if star.has("rlnOriginXAngst") or star.has("rlnOriginYAngst"):
        origin = np.stack([star.numbers("rlnOriginXAngst"), star.numbers("rlnOriginYAngst")], -1)
    elif star.has("rlnOriginX") or star.has("rlnOriginY"):
        origin = np.stack([star.numbers("rlnOriginX"), star.numbers("rlnOriginY")], -1)
        origin = origin * pixel[:, None]
    else:
        origin = np.zeros((len(pixel), 2))
    overrides = {
        "amplitude_contrast": amplitude_contrast,
        "voltage": voltage,
        "spherical_aberration": spherical_aberration,
    }
    n = len(star.particles)
    columns, labels = [], {}
    for name in CTF_FIELDS:
        label, default = _CTF_COLUMNS[name]
        labels[name] = label
        if name in _OPTICS_OVERRIDES:
            where = "data_particles or data_optics" if star.optics is not None else "the file"
            values = optics_values(
                star.optional_numbers(label),
                overrides[name],
                name,
                f"column {label}" if star.has(label) else f"column {label} in {where}",
                star.path,
                n,
            )
            if overrides[name] is not None:
                labels[name] = f"{OPTICS_FLAGS[name]} (given)"
            columns.append(values)
        else:
            columns.append(star.numbers(label, default))
    ctf = np.stack(columns, axis=-1)
    check_ctf(ctf, star.path, labels)
    box = check_stacks(
        locations.image_files, locations.image_indices, pixel, star.path, pixel_field
    )
    if star.has("rlnImageSize"):
        sizes = star.numbers("rlnImageSize")
        if np.any(sizes != box):
            raise InputError(
                f"{star.path}: rlnImageSize {sizes[sizes != box][0]:g} differs from the "
                f"stacks' box of {box} pixels"
            )
    return ParticleTable(
        rotations=rotations,
        shifts=origin_to_shift(origin),
        ctf=ctf,
        pixel_size=pixel,
        box_size=box,
        image_files=locations.image_files,
        image_indices=locations.image_indices,
        optics_group=star.groups,
        source=star.path,
        star=star.blocks,
    )


def write_star(
    path: str | os.PathLike, table: ParticleTable, image_names=None, absolute: bool = False
) -> Path:
    """Write ``table`` as a RELION 3.1 particle STAR file (RELION 3.1+ and cryoDRGN read it);
    return its path.

    ``image_names`` (N,) str overrides the ``rlnImageName`` values; by default they are
    ``NNNNNN@stack`` with the stack relative to the STAR file's own folder (through
    ``..`` where the stack is elsewhere), so that cryomotion and cryoDRGN (whose default
    folder is the STAR file's) and RELION run from that folder find the images; with
    ``absolute=True`` the stacks are named by absolute paths. Optics groups are the
    table's; a group whose particles differ in pixel size, voltage, Cs or amplitude
    contrast is split (all groups are then renumbered).
    """
    path = Path(path)
    n = len(table)
    if image_names is None:
        image_names = _image_names(table, path.parent, absolute)
    image_names = np.asarray(image_names, dtype=object)
    if image_names.shape != (n,):
        raise ValueError(f"image_names has shape {image_names.shape}, expected {(n,)}")
    field = {name: k for k, name in enumerate(CTF_FIELDS)}
    optics_columns = np.column_stack(
        [
            table.pixel_size,
            table.ctf[:, field["voltage"]],
            table.ctf[:, field["spherical_aberration"]],
            table.ctf[:, field["amplitude_contrast"]],
        ]
    )
    keys = np.column_stack([table.optics_group, np.round(optics_columns, 6)])
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    ids = unique[:, 0].astype(np.int64)
    if len(np.unique(ids)) != len(ids) or ids.min() < 1:
        ids = np.arange(1, len(unique) + 1)
    first = np.array([np.flatnonzero(inverse == k)[0] for k in range(len(unique))])
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": ids,
            "rlnOpticsGroupName": [f"opticsGroup{i}" for i in ids],
            "rlnImagePixelSize": optics_columns[first, 0],
            "rlnImageSize": np.full(len(ids), table.box_size, dtype=np.int64),
            "rlnImageDimensionality": np.full(len(ids), 2, dtype=np.int64),
            "rlnVoltage": optics_columns[first, 1],
            "rlnSphericalAberration": optics_columns[first, 2],
            "rlnAmplitudeContrast": optics_columns[first, 3],
        }
    )
    rot, tilt, psi = matrix_to_euler(table.rotations)
    origin = shift_to_origin(table.shifts)
    particles = pd.DataFrame(
        {
            "rlnImageName": image_names,
            "rlnAngleRot": rot,
            "rlnAngleTilt": tilt,
            "rlnAnglePsi": psi,
            "rlnOriginXAngst": origin[:, 0],
            "rlnOriginYAngst": origin[:, 1],
            "rlnDefocusU": table.ctf[:, field["defocus_u"]],
            "rlnDefocusV": table.ctf[:, field["defocus_v"]],
            "rlnDefocusAngle": table.ctf[:, field["defocus_angle"]],
            "rlnPhaseShift": table.ctf[:, field["phase_shift"]],
            "rlnCtfBfactor": table.ctf[:, field["b_factor"]],
            "rlnOpticsGroup": ids[inverse],
        }
    )
    text = _star_text({"optics": optics, "particles": particles}, "%.6f", version_comment=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_star_subset(path: str | os.PathLike, table: ParticleTable, indices) -> Path:
    """Write the particles ``indices`` of a table read from a STAR file, keeping all the
    file's columns, its optics table and its other blocks as they were; return the path.

    Image names are written as in the original file where they still lead to the same
    stacks from the new file's folder; otherwise they are rewritten relative to the new
    file's folder, so that the subset reads from where it is written.
    """
    if table.star is None:
        raise ValueError(f"{table.source} was not read from a STAR file; use write_star")
    subset = table.subset(indices)
    blocks = dict(subset.star)
    block = star_particle_block(blocks)
    particles = blocks[block]
    if "rlnImageName" in particles.columns and len(particles):
        folder = os.path.abspath(Path(path).parent)
        original = particles["rlnImageName"].astype(str).str.strip()
        stacks = original.str.split("@", n=1).str[-1]
        same = [
            os.path.normpath(os.path.join(folder, name)) == file
            for name, file in zip(stacks, subset.image_files)
        ]
        if not all(same):
            particles = particles.copy()
            particles["rlnImageName"] = _image_names(subset, Path(folder))
            blocks[block] = particles
    text = _star_text(blocks, _shortest_float, version_comment="optics" in blocks)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_star_with_poses(
    path: str | os.PathLike, table: ParticleTable, rotations: np.ndarray, shifts: np.ndarray
) -> Path:
    """Write ``table`` with new poses: rotations (N, 3, 3) model → microscope, shifts (N, 2)
    Å (e.g. refined ones); return the path.

    A table read from a STAR file keeps all its columns and blocks, with its Euler angles
    and origins replaced (origins in Å, ``rlnOriginXAngst``/``YAngst``, or in pixels where
    the file used ``rlnOriginX``/``Y``); any other table is written by ``write_star``.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    n = len(table)
    if rotations.shape != (n, 3, 3) or shifts.shape != (n, 2):
        raise ValueError(f"poses of shapes {rotations.shape}, {shifts.shape} for {n} particles")
    posed = replace(table, rotations=rotations, shifts=shifts)
    if table.star is None:
        return write_star(path, posed)
    blocks = dict(table.star)
    block = star_particle_block(blocks)
    particles = blocks[block].copy()
    rot, tilt, psi = matrix_to_euler(rotations)
    particles["rlnAngleRot"], particles["rlnAngleTilt"], particles["rlnAnglePsi"] = rot, tilt, psi
    origin = shift_to_origin(shifts)  # Å
    if "rlnOriginX" in particles.columns and "rlnOriginXAngst" not in particles.columns:
        particles["rlnOriginX"] = origin[:, 0] / table.pixel_size
        particles["rlnOriginY"] = origin[:, 1] / table.pixel_size
    else:
        particles["rlnOriginXAngst"], particles["rlnOriginYAngst"] = origin[:, 0], origin[:, 1]
    blocks[block] = particles
    return write_star_subset(path, replace(posed, star=blocks), np.arange(n))


def _image_names(table: ParticleTable, folder: Path, absolute: bool = False) -> np.ndarray:
    """``NNNNNN@stack`` per particle, the stack relative to ``folder`` (or absolute)."""
    codes, files = pd.factorize(pd.Series(table.image_files, dtype=object))
    folder = os.path.abspath(folder)
    names = []
    for file in files:
        file = os.path.abspath(file)
        try:
            names.append(file if absolute else os.path.relpath(file, folder))
        except ValueError:  # no relative path (another drive on Windows)
            names.append(file)
    stacks = np.asarray(names, dtype=object)[codes]
    numbers = pd.Series(table.image_indices + 1).map("{:06d}@".format).to_numpy(dtype=object)
    return numbers + stacks


def _shortest_float(value: float) -> str:
    """The shortest text that reads back as exactly ``value``, with a decimal point."""
    return np.format_float_positional(value, trim="0")


def _star_text(blocks: dict, float_format, version_comment: bool) -> str:
    text = starfile.to_string(blocks, float_format=float_format)
    lines = []
    for line in text.splitlines():
        if line.startswith("# Created by the starfile"):
            continue
        if version_comment and line.startswith("data_"):
            lines += ["", _RELION_31_VERSION, ""]
        lines.append(line)
    return "\n".join(lines).lstrip("\n") + "\n"

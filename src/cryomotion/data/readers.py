"""Read any supported particle metadata into a ParticleTable, choosing the format from the
file: RELION ``.star``, cryoSPARC ``.cs``, or a stack (``.mrcs``/``.mrc``/``.txt`` list)
with cryoDRGN ``poses.pkl`` and ``ctf.pkl``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryomotion.data.cryodrgn import read_cryodrgn
from cryomotion.data.cryosparc import read_cs
from cryomotion.data.locations import stack_images
from cryomotion.data.particles import ParticleTable
from cryomotion.data.star import read_star, star_image_locations
from cryomotion.errors import InputError

_STACK_SUFFIXES = (".mrcs", ".mrc", ".txt")


def read_particles(
    path: str | os.PathLike,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    pixel_size: float | None = None,
    dataset_dir: str | os.PathLike | None = None,
    *,
    amplitude_contrast: float | None = None,
    voltage: float | None = None,
    spherical_aberration: float | None = None,
    require_angles: bool = True,
) -> ParticleTable:
    """Read particles from ``path``.

    - ``.star``: a RELION particle file; with ``poses`` and ``ctf`` (cryoDRGN pickles)
      only its image names are used.
    - ``.cs``: a cryoSPARC particle file; ``poses`` / ``ctf`` may name passthrough
      ``.cs`` files holding the fields it lacks.
    - ``.mrcs``, ``.mrc`` or ``.txt`` (one stack per line): the images, with ``poses`` and
      ``ctf`` cryoDRGN pickles, both required.

    ``pixel_size`` (Å/px) is needed only where the file has none (RELION 3.0 files without
    rlnDetectorPixelSize/rlnMagnification); where both exist it replaces the file's, with
    a warning if they differ. A stack header's voxel size that differs from the
    metadata's pixel size is ignored with a warning, as RELION ignores it. cryoDRGN
    ``ctf.pkl`` files made for a larger box than the stack's (a downsampled stack) give
    the pixel size ``pixel_size · D / box``, as cryoDRGN computes it.
    ``amplitude_contrast``, ``voltage`` (kV) and ``spherical_aberration`` (mm) likewise
    replace the file's values or give them where it has none (``--amplitude-contrast``,
    ``--voltage``, ``--spherical-aberration``); a missing amplitude contrast is RELION's
    default 0 (with a warning), a missing voltage or Cs an InputError naming the flag.
    ``dataset_dir`` is the folder stack names are relative to (the RELION or cryoSPARC
    project directory); default the metadata file's folder. Absolute names are accepted.
    ``require_angles`` False lets a RELION file come without angles (identity rotations;
    for inferred poses).
    """
    optics = {
        "amplitude_contrast": amplitude_contrast,
        "voltage": voltage,
        "spherical_aberration": spherical_aberration,
    }
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: particle file not found")
    if suffix == ".star":
        if poses is None and ctf is None:
            return read_star(
                path,
                pixel_size=pixel_size,
                dataset_dir=dataset_dir,
                require_angles=require_angles,
                **optics,
            )
        _require_pickles(path, poses, ctf)
        return read_cryodrgn(
            star_image_locations(path, dataset_dir), poses, ctf, pixel_size, **optics
        )
    if suffix == ".cs":
        extra = [Path(p) for p in (poses, ctf) if p is not None]
        for other in extra:
            if other.suffix.lower() != ".cs":
                raise InputError(
                    f"{other}: with a cryoSPARC file, poses/ctf must be passthrough .cs files"
                )
        return read_cs(
            path, pixel_size=pixel_size, dataset_dir=dataset_dir, passthrough=extra, **optics
        )
    if suffix in _STACK_SUFFIXES:
        _require_pickles(path, poses, ctf)
        return read_cryodrgn(stack_images(path, dataset_dir), poses, ctf, pixel_size, **optics)
    raise InputError(
        f"{path}: unknown particle file type {suffix!r}; expected .star, .cs, or a stack "
        "(.mrcs, .mrc, .txt) with cryoDRGN poses.pkl and ctf.pkl"
    )


def _require_pickles(path: Path, poses, ctf) -> None:
    if poses is None or ctf is None:
        missing = "poses (poses.pkl)" if poses is None else "ctf (ctf.pkl)"
        raise InputError(f"{path}: reading it with cryoDRGN pickles needs {missing} as well")

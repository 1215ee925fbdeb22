"""Density maps of atomic models, computed with the electron form factors, written as MRC."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

from cryomotion.atomic_write import atomic_path
from cryomotion.imaging.density import scatterer_map
from cryomotion.structure.form_factors import scattering_table


def atomic_potential_map(
    coords: np.ndarray,
    elements: np.ndarray,
    box: int,
    voxel_size: float,
    origin: np.ndarray | tuple = (0.0, 0.0, 0.0),
    b_factor: float = 0.0,
    atoms_per_chunk: int = 2048,
) -> np.ndarray:
    """Band-limited electrostatic potential of atoms on a cubic grid, (box, box, box) [z, y, x].

    Each atom contributes its 5-Gaussian electron form factor, evaluated analytically at
    the grid's DFT frequencies (exact and alias-free, periodic in the box). Voxel
    ``(k, j, i)`` sits at ``origin + (i, j, k)·voxel_size`` (Å); values are potential
    densities, so ``sum × voxel_size³ = Σ f_e(0)`` over the atoms. ``b_factor`` (Å²)
    blurs every atom by exp(−B q²/4), as a temperature factor does.
    """
    _, a, b, type_index = scattering_table(elements)
    return scatterer_map(
        coords, a, b, type_index, box, voxel_size, origin, b_factor, None, atoms_per_chunk
    )


def write_map(
    path: str | Path, volume: np.ndarray, voxel_size: float, origin=(0.0, 0.0, 0.0)
) -> Path:
    """Write a (z, y, x) volume as MRC with its voxel size (Å) and origin (Å), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.asarray(volume, dtype=np.float32))
            mrc.voxel_size = voxel_size
            mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (
                float(v) for v in origin
            )
    return path

"""Density maps of atomic models, computed with the electron form factors, written as MRC."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

from cryomotion.atomic_write import atomic_path
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
    coords = np.asarray(coords, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    types, a, b, type_index = scattering_table(elements)
    q = np.fft.fftfreq(box, d=voxel_size)
    q_half = np.fft.rfftfreq(box, d=voxel_size)
    q2 = q[:, None, None] ** 2 + q[None, :, None] ** 2 + q_half[None, None, :] ** 2
    spectrum = np.zeros((box, box, len(q_half)), dtype=np.complex128)
    for t in range(len(types)):
        widths = b[t] + b_factor
        form_factor = np.einsum("i,i...->...", a[t], np.exp(-np.multiply.outer(widths, q2) / 4))
        positions = coords[type_index == t]
        structure_factor = np.zeros_like(spectrum)
        for start in range(0, len(positions), atoms_per_chunk):
            x, y, z = positions[start : start + atoms_per_chunk].T
            ex = np.exp(-2j * np.pi * np.outer(x, q_half))  # (atoms, box//2+1)
            ey = np.exp(-2j * np.pi * np.outer(y, q))  # (atoms, box)
            ez = np.exp(-2j * np.pi * np.outer(z, q))
            # sum over atoms of ez ⊗ ey ⊗ ex, as one matrix product
            zy = (ez[:, :, None] * ey[:, None, :]).reshape(len(x), -1)
            structure_factor += (zy.T @ ex).reshape(box, box, -1)
        spectrum += form_factor * structure_factor
    volume = np.fft.irfftn(spectrum, s=(box,) * 3, axes=(0, 1, 2)) / voxel_size**3
    return volume.astype(np.float32)


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

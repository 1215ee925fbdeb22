"""3-D density maps of scatterers (atoms or Gaussian pseudo-atoms) on a cubic grid.

The same physics as the renderer's projections, in 3-D: each scatterer contributes its
form factor f(s) = Σ_i a_i exp(−b_i s²), s = |q|/2, evaluated analytically at the grid's
DFT frequencies (exact, alias-free, periodic in the box), times its weight.
"""

from __future__ import annotations

import numpy as np


def scatterer_map(
    coords: np.ndarray,
    form_factor_a: np.ndarray,
    form_factor_b: np.ndarray,
    type_index: np.ndarray,
    box: int,
    voxel_size: float,
    origin: np.ndarray | tuple = (0.0, 0.0, 0.0),
    b_factor: float = 0.0,
    weights: np.ndarray | None = None,
    points_per_chunk: int = 2048,
) -> np.ndarray:
    """(box, box, box) [z, y, x] float32 density of scatterers at ``coords`` (S, 3) Å.

    form_factor_a, form_factor_b : (T, G) Å, Å²; type_index : (S,) each scatterer's type;
    weights : optional (S,) multipliers (e.g. pseudo-atom amplitudes). Voxel ``(k, j, i)``
    sits at ``origin + (i, j, k)·voxel_size`` (Å); values are densities, so
    ``sum × voxel_size³ = Σ_s w_s f_s(0)``. ``b_factor`` (Å²) blurs by exp(−B q²/4).
    """
    coords = np.asarray(coords, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    a = np.asarray(form_factor_a, dtype=np.float64)
    b = np.asarray(form_factor_b, dtype=np.float64)
    type_index = np.asarray(type_index, dtype=np.int64)
    weights = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    q = np.fft.fftfreq(box, d=voxel_size)
    q_half = np.fft.rfftfreq(box, d=voxel_size)
    q2 = q[:, None, None] ** 2 + q[None, :, None] ** 2 + q_half[None, None, :] ** 2
    spectrum = np.zeros((box, box, len(q_half)), dtype=np.complex128)
    for t in range(a.shape[0]):
        chosen = type_index == t
        if not chosen.any():
            continue
        widths = b[t] + b_factor
        form_factor = np.einsum("i,i...->...", a[t], np.exp(-np.multiply.outer(widths, q2) / 4))
        positions = coords[chosen]
        scale = None if weights is None else weights[chosen]
        structure_factor = np.zeros_like(spectrum)
        for start in range(0, len(positions), points_per_chunk):
            x, y, z = positions[start : start + points_per_chunk].T
            ex = np.exp(-2j * np.pi * np.outer(x, q_half))  # (points, box//2+1)
            if scale is not None:
                ex = ex * scale[start : start + points_per_chunk, None]
            ey = np.exp(-2j * np.pi * np.outer(y, q))  # (points, box)
            ez = np.exp(-2j * np.pi * np.outer(z, q))
            # sum over points of ez ⊗ ey ⊗ ex, as one matrix product
            zy = (ez[:, :, None] * ey[:, None, :]).reshape(len(x), -1)
            structure_factor += (zy.T @ ex).reshape(box, box, -1)
        spectrum += form_factor * structure_factor
    volume = np.fft.irfftn(spectrum, s=(box,) * 3, axes=(0, 1, 2)) / voxel_size**3
    return volume.astype(np.float32)

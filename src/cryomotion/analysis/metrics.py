"""Accuracy metrics: RMSD, EMD-RMSD between ensembles, FSC, distance correlations."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from cryomotion.structure.superpose import rmsd, superpose


def pairwise_rmsd(a: np.ndarray, b: np.ndarray, align: bool = True) -> np.ndarray:
    """(n, m) RMSD (Å) between every model of ``a`` (n, atoms, 3) and of ``b`` (m, atoms, 3)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty((len(a), len(b)))
    for j in range(len(b)):
        target = np.broadcast_to(b[j], a.shape)
        moved = superpose(a, target) if align else a
        out[:, j] = np.sqrt(np.mean(np.sum((moved - target) ** 2, axis=-1), axis=-1))
    return out


def emd_rmsd(predicted: np.ndarray, truth: np.ndarray, align: bool = True) -> float:
    """Earth mover's RMSD (Å) between two equal-size ensembles (n, atoms, 3).

    The mean RMSD over the one-to-one assignment of predicted to true models that
    minimises it (Hungarian algorithm on the n×n RMSD matrix), as in seed 002.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"ensembles differ in size: {len(predicted)} vs {len(truth)}")
    cost = pairwise_rmsd(predicted, truth, align=align)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def per_particle_rmsd(predicted: np.ndarray, truth: np.ndarray, align: bool = True) -> np.ndarray:
    """(n,) RMSD (Å) of each predicted model to its own true model, both (n, atoms, 3)."""
    return rmsd(predicted, truth, align=align)


def fourier_shell_correlation(map_a: np.ndarray, map_b: np.ndarray, voxel_size: float):
    """FSC between two cubic maps (D, D, D) with voxel size in Å.

    Returns ``(frequency, fsc)``: shell frequencies in 1/Å (shells 0..D//2) and the
    correlation in each shell.
    """
    map_a = np.asarray(map_a, dtype=np.float64)
    map_b = np.asarray(map_b, dtype=np.float64)
    if map_a.shape != map_b.shape or map_a.ndim != 3 or len(set(map_a.shape)) != 1:
        raise ValueError(f"FSC needs two cubic maps of one shape, got {map_a.shape}, {map_b.shape}")
    size = map_a.shape[0]
    fa = np.fft.rfftn(map_a)
    fb = np.fft.rfftn(map_b)
    k = np.fft.fftfreq(size) * size
    kz = np.fft.rfftfreq(size) * size
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kz[None, None, :] ** 2)
    shell = np.rint(radius).astype(np.int64)
    # Half-spectrum: interior kz planes stand for two Fourier coefficients each.
    weight = np.full(fa.shape, 2.0)
    weight[..., 0] = 1.0
    if size % 2 == 0:
        weight[..., -1] = 1.0
    n_shells = size // 2 + 1
    inside = shell < n_shells
    s, w = shell[inside], weight[inside]
    cross = np.bincount(s, w * (fa * np.conj(fb)).real[inside], minlength=n_shells)
    power_a = np.bincount(s, w * np.abs(fa[inside]) ** 2, minlength=n_shells)
    power_b = np.bincount(s, w * np.abs(fb[inside]) ** 2, minlength=n_shells)
    fsc = cross / np.sqrt(np.maximum(power_a * power_b, np.finfo(float).tiny))
    frequency = np.arange(n_shells) / (size * voxel_size)
    return frequency, fsc


def resolution_at(frequency: np.ndarray, fsc: np.ndarray, threshold: float) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold`` (0.5, 0.143),
    linearly interpolated; the Nyquist resolution if it never does."""
    below = np.nonzero(fsc[1:] < threshold)[0]
    if len(below) == 0:
        return float(1.0 / frequency[-1])
    i = below[0] + 1
    f0, f1, c0, c1 = frequency[i - 1], frequency[i], fsc[i - 1], fsc[i]
    crossing = f0 + (c0 - threshold) * (f1 - f0) / (c0 - c1) if c0 != c1 else f1
    return float(1.0 / crossing)


def centroid_distance(coords: np.ndarray, group_a: np.ndarray, group_b: np.ndarray) -> np.ndarray:
    """(...,) distance (Å) between the centroids of two atom groups of (..., atoms, 3) coords.

    A pose-invariant descriptor of a motion (e.g. LID–CORE in adenylate kinase).
    """
    coords = np.asarray(coords, dtype=np.float64)
    a = coords[..., group_a, :].mean(axis=-2)
    b = coords[..., group_b, :].mean(axis=-2)
    return np.linalg.norm(a - b, axis=-1)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two (n,) samples."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denominator = np.sqrt((x**2).sum() * (y**2).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0

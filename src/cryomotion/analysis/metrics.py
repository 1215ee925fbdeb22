"""Accuracy metrics: RMSD, EMD-RMSD between ensembles, an ensemble's spread, FSC, distance
correlations."""

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


def spread_about_mean(models: np.ndarray) -> float:
    """Median RMSD (Å) of an ensemble's models (n, atoms, 3) to their mean model, all in one
    frame (not superposed: a rigid turn of a domain against the rest counts): how far apart
    the models are. A collapsed encoder, one model for every particle, gives 0."""
    models = np.asarray(models, dtype=np.float64)
    mean = models.mean(axis=0)
    return float(np.median(np.sqrt(np.mean(np.sum((models - mean) ** 2, axis=-1), axis=-1))))


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


# -- inferred poses against true ones (AtomVAE, --pose-mode infer) ---------------------

MIRROR = np.diag([1.0, 1.0, -1.0])  # the hand flip a projection along z cannot see


def _nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest (Frobenius) to a 3×3 matrix: U diag(1, 1, det) Vᵀ."""
    u, _, vt = np.linalg.svd(matrix)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ fix @ vt


def rotation_angles(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n,) angles (degrees) of first_iᵀ second_i for rotations (n, 3, 3)."""
    m = np.einsum("nji,njk->nik", first, second)
    cosine = np.clip((np.trace(m, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def align_rotations(
    inferred: np.ndarray, true: np.ndarray, refits: int = 3
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Inferred poses (n, 3, 3) against the true ones, up to what images cannot tell apart.

    Poses inferred without a fixed frame are defined up to one global rotation G of the
    model frame, inferred_i ≈ true_i G, and possibly a mirrored model, whose images are the
    same under J true_i J G (J = diag(1, 1, −1): a projection along z does not see z → −z).
    Fits G for both (least squares on the rotations, SVD; refitted ``refits`` times on the
    half of the particles it fits best, so that badly inferred poses do not pull it) and
    keeps the one of lower median error.

    Returns the errors (n,) in degrees after alignment, G (3, 3) and whether the mirrored
    solution fits better.
    """
    inferred = np.asarray(inferred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    if inferred.shape != true.shape or inferred.shape[1:] != (3, 3) or len(true) == 0:
        raise ValueError(f"rotations {inferred.shape} and {true.shape}: expected (n, 3, 3) each")
    best = None
    for mirrored in (False, True):
        target = MIRROR @ true @ MIRROR if mirrored else true
        keep = np.arange(len(true))
        for _ in range(refits + 1):
            g = _nearest_rotation(np.einsum("nji,njk->ik", target[keep], inferred[keep]))
            errors = rotation_angles(target @ g, inferred)
            keep = np.argsort(errors)[: max(1, len(errors) // 2)]
        if best is None or np.median(errors) < np.median(best[0]):
            best = (errors, g, mirrored)
    return best


def pairwise_rmsd_fast(a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """``pairwise_rmsd(a, b)`` (superposed) for large ensembles: (n, m) Å.

    Horn's quaternion method: after centring, the best proper rotation of model i onto
    model j leaves rmsd² = (|a_i|² + |b_j|² − 2 λ_max(N_ij)) / atoms, with N_ij the 4 × 4
    symmetric matrix built from the 3 × 3 covariance Σ_atoms a_i b_jᵀ; the n·m covariances
    are nine matrix products, the eigenvalues are taken ``chunk`` pairs at a time.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    atoms = a.shape[1]
    cov = np.empty((len(a), len(b), 3, 3))
    for k in range(3):
        for m in range(3):
            cov[:, :, k, m] = a[:, :, k] @ b[:, :, m].T
    s = cov.reshape(-1, 3, 3)
    sxx, sxy, sxz = s[:, 0, 0], s[:, 0, 1], s[:, 0, 2]
    syx, syy, syz = s[:, 1, 0], s[:, 1, 1], s[:, 1, 2]
    szx, szy, szz = s[:, 2, 0], s[:, 2, 1], s[:, 2, 2]
    rows = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ]
    largest = np.empty(len(s))
    for start in range(0, len(s), chunk):
        part = slice(start, start + chunk)
        horn = np.stack([np.stack([entry[part] for entry in row], -1) for row in rows], -2)
        largest[part] = np.linalg.eigvalsh(horn)[:, -1]
    norms = (a**2).sum((1, 2))[:, None] + (b**2).sum((1, 2))[None, :]
    squared = (norms - 2.0 * largest.reshape(len(a), len(b))) / atoms
    return np.sqrt(np.clip(squared, 0.0, None))

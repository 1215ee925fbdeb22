"""Optimal superposition (Kabsch) and RMSD of corresponding coordinate sets."""

from __future__ import annotations

import numpy as np


def kabsch(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None):
    """Rotation and translation that best superpose ``mobile`` onto ``target``.

    Parameters
    ----------
    mobile, target : (..., atoms, 3) coordinates in Å, corresponding atom by atom.
    weights : (atoms,) optional non-negative weights.

    Returns
    -------
    rotation (..., 3, 3) and translation (..., 3) such that
    ``mobile @ rotation.T + translation`` is closest to ``target`` in (weighted) RMSD.
    """
    mobile = np.asarray(mobile, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    w = np.ones(mobile.shape[-2]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mobile_center = np.einsum("a,...ai->...i", w, mobile)
    target_center = np.einsum("a,...ai->...i", w, target)
    covariance = np.einsum(
        "a,...ai,...aj->...ij",
        w,
        target - target_center[..., None, :],
        mobile - mobile_center[..., None, :],
    )
    u, _, vt = np.linalg.svd(covariance)
    # A reflection would lower the RMSD but is not a rigid motion.
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.ones(u.shape[:-2] + (3,))
    correction[..., 2] = sign
    rotation = (u * correction[..., None, :]) @ vt
    translation = target_center - np.einsum("...ij,...j->...i", rotation, mobile_center)
    return rotation, translation


def superpose(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None):
    """``mobile`` (..., atoms, 3) moved rigidly onto ``target``."""
    rotation, translation = kabsch(mobile, target, weights)
    return np.einsum("...ij,...aj->...ai", rotation, mobile) + translation[..., None, :]


def rmsd(a: np.ndarray, b: np.ndarray, align: bool = True) -> np.ndarray:
    """Root-mean-square deviation (Å) between (..., atoms, 3) sets; Kabsch-aligned by default."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if align:
        a = superpose(a, b)
    return np.sqrt(np.mean(np.sum((a - b) ** 2, axis=-1), axis=-1))

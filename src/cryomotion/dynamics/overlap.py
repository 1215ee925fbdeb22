"""How modes compare with a conformational change and with each other; their collectivity.

The standard measures of the normal-mode literature, as ProDy computes them:

- overlap of mode u with a displacement Δ: |u·Δ| / (|u| |Δ|) (Marques & Sanejouand 1995);
- cumulative overlap of modes 1..k: sqrt(Σ_{l≤k} overlap_l²), the fraction of the change
  (in norm) that the first k modes can reach;
- subspace overlap of two bases (root mean square inner product, RMSIP);
- collectivity κ = exp(-Σ_a p_a ln p_a) / atoms with p_a ∝ |u_a|² / m_a (Brüschweiler
  1995): 1 when all atoms move equally, 1/atoms when one atom moves.
"""

from __future__ import annotations

import numpy as np

from cryomotion.structure.superpose import superpose


def _flat(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors.reshape(len(vectors), -1)


def conformational_change(
    reference: np.ndarray, target: np.ndarray, align: bool = True
) -> np.ndarray:
    """Displacement (atoms, 3) Å from ``reference`` to ``target`` (same atoms, same order).

    With ``align`` (default) the target is first superposed onto the reference (Kabsch),
    so the displacement holds no rigid-body motion.
    """
    reference = np.asarray(reference, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if align:
        target = superpose(target, reference)
    return target - reference


def overlap(vectors: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """(modes,) overlap of each mode (modes, atoms, 3) with a displacement (atoms, 3)."""
    flat = _flat(vectors)
    delta = np.asarray(displacement, dtype=np.float64).reshape(-1)
    if flat.shape[1] != delta.size:
        raise ValueError(f"modes of {flat.shape[1]} coordinates, displacement of {delta.size}")
    norms = np.linalg.norm(flat, axis=1) * np.linalg.norm(delta)
    return np.abs(flat @ delta) / norms


def cumulative_overlap(vectors: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """(modes,) cumulative overlap of modes 1..k with a displacement, for each k.

    The modes are assumed orthogonal (so the squares add up).
    """
    return np.sqrt(np.cumsum(overlap(vectors, displacement) ** 2))


def subspace_overlap(vectors_a: np.ndarray, vectors_b: np.ndarray) -> float:
    """Root mean square inner product of two sets of orthonormal modes (modes, atoms, 3).

    1 when they span the same space; the mean is over the modes of ``vectors_a``.
    """
    a, b = _flat(vectors_a), _flat(vectors_b)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.sqrt(np.sum((a @ b.T) ** 2) / len(a)))


def collectivity(vectors: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """(modes,) collectivity of modes (modes, atoms, 3), optionally with masses (atoms,) Da."""
    vectors = np.asarray(vectors, dtype=np.float64)
    squares = np.sum(vectors**2, axis=2)  # (modes, atoms)
    if masses is not None:
        squares = squares / np.asarray(masses, dtype=np.float64)[None, :]
    p = squares / squares.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    return np.exp(entropy) / vectors.shape[1]

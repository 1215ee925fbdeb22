"""Structural priors on residue centres (Cα): chain continuity and steric clashes.

cryoSPHERE (seed 001, appendix A.1) offers both as options for very heterogeneous data;
AtomVAE (seed 002) uses the continuity term. Both are written to stay finite, with finite
gradients, in every corner case: coincident residues (d = 0), no clashing pair, no pair at
all, a single residue. Distances use sqrt(|Δ|² + eps) so their gradient exists at d = 0.
"""

from __future__ import annotations

import numpy as np
import torch

DISTANCE_EPS = 1e-8  # Å², inside the square root of every distance
MAX_ALL_PAIRS_RESIDUES = 3000  # above this, clash candidates are the pairs within a cutoff
CANDIDATE_CUTOFF = 30.0  # Å, reference distance of the clash candidates for large models


def _chain_codes(residue_chain: np.ndarray) -> np.ndarray:
    """(R,) int code of each residue's chain (equal ids, equal codes)."""
    _, codes = np.unique(np.asarray(residue_chain).astype(str), return_inverse=True)
    return codes.reshape(-1)


def pair_distances(centers: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Safe distances sqrt(|x_i − x_j|² + eps) in Å.

    centers : (B, R, 3) or (R, 3) Å; pairs : (P, 2) int. Returns (B, P) or (P,).
    """
    delta = centers[..., pairs[:, 0], :] - centers[..., pairs[:, 1], :]
    return torch.sqrt((delta * delta).sum(-1) + DISTANCE_EPS)


def consecutive_pairs(
    residue_chain: np.ndarray, residue_centers: np.ndarray, max_bond: float = 4.2
) -> np.ndarray:
    """(P, 2) int64 pairs (i, i+1) of consecutive residues bonded in the reference.

    residue_chain : (R,) chain id per residue; residue_centers : (R, 3) Å (Cα).
    A pair is bonded when both residues are in the same chain and their reference distance
    is below ``max_bond`` Å (Cα–Cα is 3.8 Å; a chain break or missing residues is no bond).
    """
    chain = _chain_codes(residue_chain)
    centers = np.asarray(residue_centers, dtype=np.float64)
    if centers.shape != (len(chain), 3):
        raise ValueError(f"residue_centers of shape {centers.shape}, expected ({len(chain)}, 3)")
    if len(chain) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    first = np.arange(len(chain) - 1)
    length = np.linalg.norm(centers[1:] - centers[:-1], axis=1)
    bonded = (chain[1:] == chain[:-1]) & (length < max_bond)
    return np.stack([first[bonded], first[bonded] + 1], axis=1).astype(np.int64)


def clash_candidates(
    residue_chain: np.ndarray,
    n_residues: int,
    reference_centers: np.ndarray | None = None,
    *,
    max_residues: int = MAX_ALL_PAIRS_RESIDUES,
    cutoff: float = CANDIDATE_CUTOFF,
) -> np.ndarray:
    """(Q, 2) int64 residue pairs (i < j) that a clash term watches.

    A pair is a candidate unless the two residues are sequence neighbours in the same chain
    (|i − j| = 1, same chain): those are held by the continuity term. Up to ``max_residues``
    residues every such pair is a candidate (Q ~ R²/2: 4.5 million at 3000). Larger models
    keep only the pairs closer than ``cutoff`` Å in ``reference_centers`` (R, 3), which are
    then required; motions that bring residues from further away together are not watched.
    """
    chain = _chain_codes(residue_chain)
    if len(chain) != n_residues:
        raise ValueError(f"residue_chain has {len(chain)} entries, expected {n_residues}")
    if n_residues <= max_residues:
        first, second = np.triu_indices(n_residues, k=1)
    else:
        if reference_centers is None:
            raise ValueError(
                f"{n_residues} residues > {max_residues}: clash candidates need "
                "reference_centers to keep the pairs within the cutoff"
            )
        from scipy.spatial import cKDTree

        centers = np.asarray(reference_centers, dtype=np.float64)
        if centers.shape != (n_residues, 3):
            raise ValueError(
                f"reference_centers of shape {centers.shape}, expected ({n_residues}, 3)"
            )
        close = cKDTree(centers).query_pairs(cutoff, output_type="ndarray")
        close = np.sort(close.reshape(-1, 2), axis=1)
        close = close[np.lexsort((close[:, 1], close[:, 0]))]
        first, second = close[:, 0], close[:, 1]
    neighbours = (second - first == 1) & (chain[first] == chain[second])
    return np.stack([first[~neighbours], second[~neighbours]], axis=1).astype(np.int64)


def continuity_loss(
    centers: torch.Tensor, pairs: torch.Tensor, reference_lengths: torch.Tensor
) -> torch.Tensor:
    """Mean over batch and pairs of (d − d0)², Å².

    centers : (B, R, 3) Å; pairs : (P, 2) int (``consecutive_pairs``); reference_lengths :
    (P,) Å, best computed with ``pair_distances`` on the reference so that the reference
    scores exactly 0. With P = 0 the loss is 0, still attached to the graph.
    """
    if pairs.shape[0] == 0:
        return (centers * 0.0).sum()
    stretch = pair_distances(centers, pairs) - reference_lengths
    return (stretch * stretch).mean()


def clash_loss(centers: torch.Tensor, pairs: torch.Tensor, distance: float = 4.0) -> torch.Tensor:
    """Mean over batch of Σ_pairs relu(distance − d)² / max(Q, 1), Å².

    centers : (B, R, 3) Å; pairs : (Q, 2) int (``clash_candidates``); distance : Å below
    which a pair clashes. The denominator is the fixed number of candidates, never the
    number of clashing pairs, so no clash gives exactly 0 (not 0/0).
    """
    if pairs.shape[0] == 0:
        return (centers * 0.0).sum()
    overlap = torch.relu(distance - pair_distances(centers, pairs))
    return (overlap * overlap).sum(-1).mean() / max(pairs.shape[0], 1)

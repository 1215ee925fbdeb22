"""The best N contiguous rigid segments of a residue chain can do: a segments ceiling.

Given a reference Y (R, 3) Å and true frames X_f (F, R, 3) Å, one point per residue in
chain order (e.g. the Cα), every partition of the chain into N contiguous segments of at
least ``min_length`` residues is scored by moving each segment of the reference rigidly
(least squares, proper rotation: Kabsch) onto each frame:

    cost = Σ_f w_f Σ_segments s  min over R, t of Σ_(residues of s) |R Y + t − X_f|²,

with w_f the frames' weights (e.g. how many particles show each frame). One partition is
shared by all frames, as a learned segmentation is shared by all particles. The optimum is
exact: the cost of every contiguous range i..j−1 follows in closed form from prefix sums
(the residual of an optimal superposition is |Y_c|² + |X_c|² − 2(σ₁ + σ₂ ± σ₃), σ the
singular values of the centred covariance, − where the best orthogonal fit would be a
reflection), then dynamic programming over the cut positions finds the best partition in
O(N R²). Segments never span a chain break (a change of chain label between consecutive
residues is a forced cut).

Reading: no model that moves N contiguous rigid segments of the chain, one segmentation for
all particles, gets closer to the true frames on (weighted) average. cryoSPHERE's learned
segments are soft memberships, not forced to be contiguous: only as far as they end up
hard and contiguous (as they mostly do) does this bound what they can hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryomotion.structure.superpose import superpose


@dataclass
class SegmentCeiling:
    """``segments`` (R,) int: the 0-based segment of each residue, increasing along the
    chain; ``rmsd`` (F,) Å: each frame's RMSD after every segment of the reference is
    superposed rigidly onto it; ``cost`` Å²: the minimised weighted sum over frames of the
    squared residuals (summed over residues)."""

    segments: np.ndarray
    rmsd: np.ndarray
    cost: float


def range_costs(
    reference: np.ndarray,
    frames: np.ndarray,
    weights: np.ndarray | None = None,
    chains: np.ndarray | None = None,
    min_length: int = 3,
) -> np.ndarray:
    """(R + 1, R + 1) Å²: entry [i, j] the weighted sum over frames of the squared residual
    of residues i..j−1 after the optimal rigid superposition of the reference's onto the
    frame's; inf where j − i < ``min_length`` or the range spans a chain break.

    reference (R, 3) Å, frames (F, R, 3) Å, weights (F,) ≥ 0 (default 1), chains (R,) labels
    (default one chain).
    """
    reference, frames, weights, chain_run = _checked(reference, frames, weights, chains)
    if min_length < 1:
        raise ValueError(f"min_length {min_length}: expected at least 1")
    n_residues = len(reference)
    # centred on the whole chain: smaller numbers in the prefix sums, same residuals
    reference = reference - reference.mean(axis=0)
    frames = frames - frames.mean(axis=1, keepdims=True)
    costs = np.full((n_residues + 1, n_residues + 1), np.inf)
    for start in range(n_residues - min_length + 1):
        # the range start..stop-1 stays in start's chain
        stop_max = start + int(np.count_nonzero(chain_run[start:] == chain_run[start]))
        if stop_max - start < min_length:
            continue
        mobile = reference[start:stop_max]  # (L, 3)
        target = frames[:, start:stop_max]  # (F, L, 3)
        count = np.arange(1, len(mobile) + 1, dtype=np.float64)  # (L,) residues in the range
        sum_mobile = np.cumsum(mobile, axis=0)  # (L, 3)
        sum_target = np.cumsum(target, axis=1)  # (F, L, 3)
        square_mobile = np.cumsum((mobile**2).sum(-1))  # (L,)
        square_target = np.cumsum((target**2).sum(-1), axis=1)  # (F, L)
        cross = np.cumsum(np.einsum("fli,lj->flij", target, mobile), axis=1)  # (F, L, 3, 3)
        covariance = (
            cross - np.einsum("fli,lj->flij", sum_target, sum_mobile) / count[:, None, None]
        )
        spread = (
            square_mobile
            - (sum_mobile**2).sum(-1) / count
            + square_target
            - (sum_target**2).sum(-1) / count
        )  # (F, L): Σ|Y − Ȳ|² + Σ|X − X̄|²
        singular = np.linalg.svd(covariance, compute_uv=False)  # (F, L, 3), descending
        # a proper rotation: the smallest singular value counts negatively where the best
        # orthogonal fit is a reflection (det < 0)
        sign = np.where(np.linalg.det(covariance) < 0, -1.0, 1.0)
        fitted = singular[..., 0] + singular[..., 1] + sign * singular[..., 2]
        residual = np.clip(spread - 2.0 * fitted, 0.0, None)  # (F, L)
        lengths = slice(min_length - 1, None)
        costs[start, start + min_length : stop_max + 1] = weights @ residual[:, lengths]
    return costs


def best_partition(costs: np.ndarray, n_segments: int) -> tuple[np.ndarray, float]:
    """The cut positions (N + 1,) (0, …, R) of the partition of R residues into
    ``n_segments`` contiguous ranges of least total cost, and that cost, from
    ``range_costs`` (R + 1, R + 1)."""
    n_residues = costs.shape[0] - 1
    if n_segments < 1:
        raise ValueError(f"n_segments {n_segments}: expected at least 1")
    best = np.full(n_residues + 1, np.inf)  # best[j]: residues 0..j-1 in k segments
    best[0] = 0.0
    choice = np.zeros((n_segments, n_residues + 1), dtype=np.int64)
    for k in range(n_segments):
        total = best[:, None] + costs  # [i, j]: best up to i, then the range i..j-1
        choice[k] = np.argmin(total, axis=0)
        best = total[choice[k], np.arange(n_residues + 1)]
    if not np.isfinite(best[n_residues]):
        raise ValueError(
            f"{n_residues} residues cannot be cut into {n_segments} segments (each at least "
            "the minimum length, none across a chain break)"
        )
    cuts = [n_residues]
    for k in range(n_segments - 1, -1, -1):
        cuts.append(int(choice[k, cuts[-1]]))
    return np.array(cuts[::-1]), float(best[n_residues])


def segment_ceiling(
    reference: np.ndarray,
    frames: np.ndarray,
    n_segments: int,
    weights: np.ndarray | None = None,
    chains: np.ndarray | None = None,
    min_length: int = 3,
) -> SegmentCeiling:
    """The partition of the chain into ``n_segments`` contiguous rigid segments that fits
    the frames best (module docstring) and each frame's RMSD under it.

    reference (R, 3) Å, frames (F, R, 3) Å, one point per residue in chain order; weights
    (F,) ≥ 0 (default 1); chains (R,) labels, a change between consecutive residues a forced
    cut (default one chain); ``min_length`` residues per segment at least (a rigid fit of
    fewer than 3 points is degenerate).
    """
    reference, frames, weights, _ = _checked(reference, frames, weights, chains)
    costs = range_costs(reference, frames, weights, chains, min_length)
    cuts, cost = best_partition(costs, n_segments)
    segments = np.repeat(np.arange(n_segments), np.diff(cuts))
    moved = np.empty_like(frames)
    for start, stop in zip(cuts[:-1], cuts[1:]):
        part = frames[:, start:stop]
        moved[:, start:stop] = superpose(np.broadcast_to(reference[start:stop], part.shape), part)
    rmsd = np.sqrt(((moved - frames) ** 2).sum(-1).mean(-1))
    return SegmentCeiling(segments, rmsd, cost)


def _checked(reference, frames, weights, chains):
    """The inputs as float64 arrays, weights (F,) and chain runs (R,) int (a new run where
    the label changes), after checking their shapes."""
    reference = np.asarray(reference, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.float64)
    if reference.ndim != 2 or reference.shape[1] != 3 or frames.shape[1:] != reference.shape:
        raise ValueError(
            f"reference {reference.shape} and frames {frames.shape}: expected (R, 3) and (F, R, 3)"
        )
    n_frames, n_residues = frames.shape[:2]
    weights = np.ones(n_frames) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_frames,) or np.any(weights < 0):
        raise ValueError(f"weights of shape {weights.shape}: expected ({n_frames},), ≥ 0")
    if chains is None:
        chain_run = np.zeros(n_residues, dtype=np.int64)
    else:
        chains = np.asarray(chains)
        if chains.shape != (n_residues,):
            raise ValueError(f"chains of shape {chains.shape}: expected ({n_residues},)")
        chain_run = np.concatenate([[0], np.cumsum(chains[1:] != chains[:-1])])
    return reference, frames, weights, chain_run

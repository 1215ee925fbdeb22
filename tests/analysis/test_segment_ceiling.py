"""The best N contiguous rigid segments (analysis.segment_ceiling), against independent
answers: rigidly moved blocks, plain Kabsch, a brute-force search over all partitions."""

import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.analysis.segment_ceiling import range_costs, segment_ceiling
from cryomotion.structure.superpose import superpose


def chain(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) Å: a random walk of 3.8-Å steps, a Cα trace's spacing."""
    steps = np.random.default_rng(seed).normal(size=(n, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
    return np.cumsum(steps, axis=0)


def moved_blocks(reference: np.ndarray, cuts, n_frames: int, seed: int = 1) -> np.ndarray:
    """(F, R, 3): each block cuts[k]..cuts[k+1]−1 turned and shifted at random, per frame."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, *reference.shape))
    for f in range(n_frames):
        for start, stop in zip(cuts[:-1], cuts[1:]):
            rotation = Rotation.random(random_state=rng).as_matrix()
            frames[f, start:stop] = reference[start:stop] @ rotation.T + rng.normal(size=3) * 5
    return frames


def brute_force_cost(reference, frames, weights, cuts) -> float:
    """Σ_f w_f Σ_segments squared residual after superposing each segment on its own."""
    total = 0.0
    for start, stop in zip(cuts[:-1], cuts[1:]):
        part = frames[:, start:stop]
        moved = superpose(np.broadcast_to(reference[start:stop], part.shape), part)
        total += weights @ ((moved - part) ** 2).sum(axis=(-2, -1))
    return total


def test_rigidly_moved_blocks_are_fitted_exactly_and_their_boundaries_found():
    reference = chain(30)
    cuts = [0, 9, 20, 30]
    frames = moved_blocks(reference, cuts, n_frames=4)
    result = segment_ceiling(reference, frames, 3)
    np.testing.assert_allclose(result.rmsd, 0.0, atol=1e-6)
    assert list(np.nonzero(np.diff(result.segments))[0] + 1) == cuts[1:-1]
    assert list(result.segments[[0, 9, 20, 29]]) == [0, 1, 2, 2]


def test_one_segment_is_the_kabsch_superposition_of_the_whole_chain():
    reference = chain(25)
    frames = reference + np.random.default_rng(2).normal(size=(5, 25, 3))
    result = segment_ceiling(reference, frames, 1)
    expected = per_particle_rmsd(np.broadcast_to(reference, frames.shape), frames)
    np.testing.assert_allclose(result.rmsd, expected, rtol=1e-9)
    assert np.all(result.segments == 0)


def test_dynamic_programming_finds_the_brute_force_optimum():
    reference = chain(12, seed=3)
    rng = np.random.default_rng(4)
    frames = moved_blocks(reference, [0, 5, 12], 3, seed=5) + rng.normal(size=(3, 12, 3))
    frames = np.concatenate([frames, reference[None] * [-1.0, 1.0, 1.0]])  # a mirror image
    weights = np.array([3.0, 1.0, 0.5, 2.0])
    # every range's cost against superposing it directly (proper rotations only)
    costs = range_costs(reference, frames, weights)
    for start in range(12):
        for stop in range(start + 1, 13):
            expected = brute_force_cost(reference, frames, weights, [start, stop])
            if stop - start >= 3:
                assert costs[start, stop] == pytest.approx(expected, rel=1e-8, abs=1e-8)
            else:
                assert costs[start, stop] == np.inf
    result = segment_ceiling(reference, frames, 3, weights)
    partitions = [
        (0, a, b, 12)
        for a, b in itertools.combinations(range(1, 12), 2)
        if min(a, b - a, 12 - b) >= 3
    ]
    brute = {p: brute_force_cost(reference, frames, weights, p) for p in partitions}
    best = min(brute, key=brute.get)
    found = (0, *(np.nonzero(np.diff(result.segments))[0] + 1), 12)
    assert result.cost == pytest.approx(brute[best], rel=1e-9)
    assert brute[found] == pytest.approx(brute[best], rel=1e-9)
    assert result.cost <= min(brute.values()) * (1 + 1e-9)
    # the per-frame RMSDs are the chosen partition's
    np.testing.assert_allclose(weights @ (result.rmsd**2 * 12), brute[found], rtol=1e-9)


def test_more_segments_never_fit_worse():
    reference = chain(40, seed=6)
    frames = moved_blocks(reference, [0, 13, 27, 40], 6, seed=7)
    frames += np.random.default_rng(8).normal(size=frames.shape) * 0.5
    weights = np.arange(1.0, 7.0)
    costs, rms, single = [], [], []
    for n in range(1, 7):
        result = segment_ceiling(reference, frames, n, weights)
        costs.append(result.cost)
        rms.append(np.sqrt(weights @ result.rmsd**2 / weights.sum()))
        single.append(segment_ceiling(reference, frames[:1], n).rmsd[0])
    assert np.all(np.diff(costs) <= 1e-9) and np.all(np.diff(rms) <= 1e-12)
    assert np.all(np.diff(single) <= 1e-12)
    assert costs[2] < 0.1 * costs[1]  # three blocks: three segments take most of it


def test_segments_do_not_cross_chain_breaks():
    reference = chain(20, seed=9)
    frames = moved_blocks(reference, [0, 8, 20], 2, seed=10)
    chains = np.array(["A"] * 8 + ["B"] * 12)
    result = segment_ceiling(reference, frames, 3, chains=chains)
    assert result.segments[7] != result.segments[8]
    np.testing.assert_allclose(result.rmsd, 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot be cut"):
        segment_ceiling(reference, frames, 1, chains=chains)
    with pytest.raises(ValueError, match="cannot be cut"):
        segment_ceiling(reference, frames, 7)  # 7 × 3 > 20 residues

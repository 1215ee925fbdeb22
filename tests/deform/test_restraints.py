"""Continuity and clash restraints: known values and finiteness in every corner case."""

import numpy as np
import pytest
import torch

from cryomotion.deform.restraints import (
    clash_candidates,
    clash_loss,
    consecutive_pairs,
    continuity_loss,
    pair_distances,
)


def _line(n: int, step: float = 3.8) -> np.ndarray:
    """(n, 3) Å, residues along x every ``step`` Å."""
    centers = np.zeros((n, 3))
    centers[:, 0] = step * np.arange(n)
    return centers


def _finite_grad(loss: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(loss, centers)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    return grad


def test_consecutive_pairs_skip_chain_breaks_and_gaps():
    centers = _line(7)
    centers[3:5] += [10.0, 0.0, 0.0]  # gap between residues 2 and 3, and between 4 and 5
    chain = np.array(list("AAAAABB"))
    pairs = consecutive_pairs(chain, centers)
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 2], [3, 4], [5, 6]])
    centers = _line(7)
    np.testing.assert_array_equal(  # 4–5 is 3.8 Å apart but crosses chains: no bond
        consecutive_pairs(chain, centers), [[0, 1], [1, 2], [2, 3], [3, 4], [5, 6]]
    )
    assert consecutive_pairs(np.array(["A"]), centers[:1]).shape == (0, 2)


def test_continuity_zero_for_reference_and_known_stretch():
    reference = torch.tensor(_line(5), dtype=torch.float32)
    pairs = torch.tensor(consecutive_pairs(np.array(["A"] * 5), reference.numpy()))
    lengths = pair_distances(reference, pairs)
    centers = reference.expand(2, -1, -1).clone().requires_grad_(True)
    loss = continuity_loss(centers, pairs, lengths)
    assert loss.item() == 0.0
    assert torch.equal(_finite_grad(loss, centers), torch.zeros_like(centers))

    stretched = reference.clone()
    stretched[4:] += torch.tensor([2.0, 0.0, 0.0])  # bond 3–4 now 5.8 Å instead of 3.8
    centers = torch.stack([reference, stretched]).requires_grad_(True)
    loss = continuity_loss(centers, pairs, lengths)
    # mean over 2 conformations × 4 bonds, one of which is off by 2 Å: 4 / 8
    assert loss.item() == pytest.approx(0.5, rel=1e-5)
    grad = _finite_grad(loss, centers)
    # d/dx4 of (d − d0)²/8 = 2·2/8 along +x
    np.testing.assert_allclose(grad[1, 4].numpy(), [0.5, 0, 0], atol=1e-5)


def test_continuity_without_pairs_is_zero_with_gradient():
    centers = torch.zeros(3, 1, 3, requires_grad=True)
    loss = continuity_loss(centers, torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))
    assert loss.item() == 0.0
    _finite_grad(loss, centers)


def test_clash_candidates_exclude_only_same_chain_neighbours():
    chain = np.array(list("AAABB"))
    pairs = clash_candidates(chain, 5)
    expected = [[0, 2], [0, 3], [0, 4], [1, 3], [1, 4], [2, 3], [2, 4]]
    np.testing.assert_array_equal(pairs, expected)  # 2–3 adjacent but across chains: kept
    assert clash_candidates(np.array(["A"]), 1).shape == (0, 2)
    with pytest.raises(ValueError, match="entries"):
        clash_candidates(chain, 6)


def test_clash_candidates_large_models_use_a_cutoff():
    centers = _line(12, step=10.0)
    chain = np.array(["A"] * 12)
    # Above max_residues only pairs within the cutoff (25 Å: |i − j| = 2) are kept.
    pairs = clash_candidates(chain, 12, centers, max_residues=5, cutoff=25.0)
    np.testing.assert_array_equal(pairs, np.stack([np.arange(10), np.arange(10) + 2], 1))
    with pytest.raises(ValueError, match="reference_centers"):
        clash_candidates(chain, 12, max_residues=5)
    all_pairs = clash_candidates(chain, 12)
    assert len(all_pairs) == 12 * 11 // 2 - 11


def test_clash_without_clash_is_exactly_zero_with_finite_gradient():
    centers = torch.tensor(_line(6, step=5.0), dtype=torch.float32)[None].requires_grad_(True)
    pairs = torch.tensor(clash_candidates(np.array(["A"] * 6), 6))
    loss = clash_loss(centers, pairs, distance=4.0)
    assert loss.item() == 0.0  # no 0/0: the denominator is the number of candidates
    assert torch.equal(_finite_grad(loss, centers), torch.zeros_like(centers))


def test_clash_fixed_denominator_known_value():
    centers = torch.tensor(_line(6, step=10.0), dtype=torch.float32)
    centers[5] = centers[0] + torch.tensor([3.0, 0.0, 0.0])  # 0–5 at 3 Å: overlap 1 Å
    pairs = torch.tensor(clash_candidates(np.array(["A"] * 6), 6))
    centers = torch.stack([centers, torch.tensor(_line(6, step=10.0), dtype=torch.float32)])
    centers.requires_grad_(True)
    loss = clash_loss(centers, pairs, distance=4.0)
    # one clashing pair among 10 candidates, in one of two conformations: 1² / 10 / 2
    assert loss.item() == pytest.approx(0.05, rel=1e-5)
    grad = _finite_grad(loss, centers)
    assert grad[0, 5, 0] < 0 and grad[0, 0, 0] > 0  # descending pushes the pair apart


def test_clash_coincident_residues_finite():
    centers = torch.zeros(1, 3, 3)
    centers[0, 2, 0] = 10.0
    centers.requires_grad_(True)  # residues 0 and 2 far, 0 and 1 coincide (d = 0)
    pairs = torch.tensor([[0, 1], [0, 2]])
    loss = clash_loss(centers, pairs, distance=4.0)
    assert loss.item() == pytest.approx(16.0 / 2, rel=1e-3)
    _finite_grad(loss, centers)
    lengths = torch.tensor([3.8, 3.8])
    _finite_grad(continuity_loss(centers, pairs, lengths), centers)


def test_single_residue_and_empty_pairs():
    centers = torch.ones(2, 1, 3, requires_grad=True)
    pairs = torch.tensor(clash_candidates(np.array(["A"]), 1))
    loss = clash_loss(centers, pairs)
    assert loss.item() == 0.0
    _finite_grad(loss, centers)

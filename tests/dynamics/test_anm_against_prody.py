"""Our ANM modes against ProDy's on adenylate kinase (independent implementation)."""

import numpy as np
import pytest

from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.dynamics.overlap import (
    collectivity,
    conformational_change,
    cumulative_overlap,
    subspace_overlap,
)

prody = pytest.importorskip("prody")
prody.confProDy(verbosity="none")


def prody_anm(coords, n_modes, cutoff=15.0):
    anm = prody.ANM()
    anm.buildHessian(coords, cutoff=cutoff)
    anm.calcModes(n_modes)
    return anm


def near_degenerate_groups(eigenvalues, relative_gap=0.01):
    """Runs of consecutive modes whose eigenvalues differ by at most ``relative_gap``."""
    groups, current = [], [0]
    for index in range(1, len(eigenvalues)):
        if eigenvalues[index] - eigenvalues[index - 1] > relative_gap * eigenvalues[index]:
            groups.append(current)
            current = []
        current.append(index)
    groups.append(current)
    return groups


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_adk_ca_modes_match_prody(adk_open, method):
    n_check, n_computed = 20, 26
    modes = compute_normal_modes(adk_open, n_modes=n_computed, method=method)
    reference = prody_anm(modes.node_coords, n_computed)
    expected_values = reference.getEigvals()
    expected_vectors = reference.getEigvecs().T.reshape(n_computed, -1, 3)

    relative = np.abs(modes.eigenvalues - expected_values) / expected_values
    assert relative[:n_check].max() < 1e-4

    for group in near_degenerate_groups(expected_values):
        if group[0] >= n_check:
            break
        ours, theirs = modes.cg_vectors[group], expected_vectors[group]
        if len(group) == 1:
            overlap = abs(np.sum(ours * theirs)) / np.linalg.norm(ours) / np.linalg.norm(theirs)
            assert overlap > 0.99, f"mode {group[0] + 1}: overlap {overlap:.4f}"
        else:
            assert subspace_overlap(ours, theirs) > 0.99, f"modes {group}"


def test_multichain_network_matches_prody(adk_open, tiled):
    two_chains = tiled(adk_open, copies=2, gap=2.0)
    modes = compute_normal_modes(two_chains, n_modes=12, method="sparse")
    assert modes.n_nodes == 428
    reference = prody_anm(modes.node_coords, 12)
    np.testing.assert_allclose(modes.eigenvalues, reference.getEigvals(), rtol=1e-6)
    overlap = subspace_overlap(modes.cg_vectors, reference.getEigvecs().T.reshape(12, -1, 3))
    assert overlap > 0.999


def test_open_to_closed_cumulative_overlap_equals_prody(adk_open, adk_closed):
    modes = compute_normal_modes(adk_open, n_modes=16)
    # ProDy's answer on its own: Cα, superposition, cumulative overlap.
    open_ca = prody.parsePDB(adk_open.source).select("calpha")
    closed_ca = prody.parsePDB(adk_closed.source).select("calpha").copy()
    prody.superpose(closed_ca, open_ca)
    anm = prody_anm(open_ca, 16)
    change_ca = (closed_ca.getCoords() - open_ca.getCoords()).reshape(-1)
    expected = prody.calcCumulOverlap(anm[:16], change_ca)

    change = conformational_change(modes.node_coords, adk_closed.coords[modes.cg_indices])
    ours = cumulative_overlap(modes.cg_vectors, change)
    assert abs(ours[-1] - expected[-1]) < 0.01
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    # The all-atom basis reaches nearly as far with all heavy atoms.
    atom_change = conformational_change(adk_open.coords, adk_closed.coords)
    assert cumulative_overlap(modes.vectors, atom_change)[-1] > 0.93


def test_collectivity_and_subspace_overlap_match_prody(adk_open):
    modes = compute_normal_modes(adk_open, n_modes=6)
    anm = prody_anm(modes.node_coords, 8)
    expected = [prody.calcCollectivity(anm[index]) for index in range(6)]
    np.testing.assert_allclose(collectivity(modes.cg_vectors), expected, rtol=1e-10)
    other = anm.getEigvecs().T[2:8].reshape(6, -1, 3)
    ours = subspace_overlap(modes.cg_vectors, other)
    assert ours == pytest.approx(prody.calcSubspaceOverlap(anm[:6], anm[2:8]), abs=1e-9)

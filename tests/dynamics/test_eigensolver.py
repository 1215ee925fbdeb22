"""Rigid-body modes found numerically; dense and shift-invert solvers agree."""

import numpy as np
import pytest

from cryomotion.dynamics.eigensolver import lowest_eigenpairs, nontrivial_modes
from cryomotion.dynamics.elastic_network import anm_hessian
from cryomotion.dynamics.nodes import select_nodes


@pytest.fixture(scope="module")
def adk_network(adk_open):
    coords = select_nodes(adk_open, "ca").coords
    return coords, anm_hessian(coords)


def rigid_body_basis(coords):
    """(6, 3 nodes) orthonormal basis of infinitesimal translations and rotations."""
    centred = coords - coords.mean(axis=0)
    motions = []
    for axis in np.eye(3):
        motions.append(np.tile(axis, len(coords)))
        motions.append(np.cross(axis, centred).reshape(-1))
    q, _ = np.linalg.qr(np.array(motions).T)
    return q.T


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_six_rigid_body_modes_have_zero_eigenvalue(adk_network, method):
    coords, hessian = adk_network
    spectrum = nontrivial_modes(hessian, 10, method=method)
    assert len(spectrum.rigid_eigenvalues) == 6
    scale = hessian.diagonal().max()
    assert np.abs(spectrum.rigid_eigenvalues).max() < 1e-12 * scale
    assert spectrum.eigenvalues[0] > 1e-4 * scale
    # The six zero modes span exactly the rigid-body motions.
    rigid = rigid_body_basis(coords)
    singular = np.linalg.svd(rigid @ spectrum.rigid_vectors.T, compute_uv=False)
    np.testing.assert_allclose(singular, 1.0, atol=1e-8)
    # The non-trivial modes are orthogonal to them.
    assert np.abs(rigid @ spectrum.vectors.T).max() < 1e-8


def test_dense_and_sparse_agree(adk_network):
    _, hessian = adk_network
    dense = nontrivial_modes(hessian, 20, method="dense")
    sparse = nontrivial_modes(hessian, 20, method="sparse")
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues, rtol=1e-9)
    # Signs are fixed the same way, so non-degenerate vectors agree outright.
    gaps = np.diff(dense.eigenvalues) / dense.eigenvalues[1:]
    isolated = np.r_[gaps[0] > 0.01, (gaps[1:] > 0.01) & (gaps[:-1] > 0.01)]
    np.testing.assert_allclose(
        sparse.vectors[:-1][isolated], dense.vectors[:-1][isolated], atol=1e-6
    )


def test_eigenpairs_satisfy_the_eigen_equation(adk_network):
    _, hessian = adk_network
    values, vectors = lowest_eigenpairs(hessian, 12, method="sparse")
    residual = hessian @ vectors.T - vectors.T * values
    assert np.abs(residual).max() < 1e-9
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(12), atol=1e-10)


def test_floppy_node_adds_zero_modes_that_are_set_apart(caplog):
    rng = np.random.default_rng(0)
    cluster = rng.uniform(0.0, 4.5, size=(30, 3))
    # The last node hangs on a single spring (to the node at x = 6): it spins freely about
    # it, which adds two zero modes to the six rigid-body ones.
    coords = np.concatenate([cluster, [[6.0, 0.0, 0.0], [20.0, 0.0, 0.0]]])
    hessian = anm_hessian(coords, cutoff=15.0)
    spectrum = nontrivial_modes(hessian, 5)
    assert len(spectrum.rigid_eigenvalues) == 8
    assert "8 zero eigenvalues" in caplog.text
    assert len(spectrum.eigenvalues) == 5
    assert spectrum.eigenvalues[0] > 1e-6

"""Coarse-grained -> all-atom extension: kernel limits, node atoms, orthonormal bases."""

import numpy as np
import pytest
import scipy.linalg

from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.dynamics.elastic_network import anm_hessian
from cryomotion.dynamics.interpolation import (
    extend_to_atoms,
    interpolation_weights,
    orthonormalize,
)
from cryomotion.dynamics.nodes import select_nodes


@pytest.fixture(scope="module")
def adk_ca_nodes(adk_open):
    return select_nodes(adk_open, "ca")


def random_node_vectors(n_nodes, n_modes=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n_modes, n_nodes, 3))


@pytest.mark.parametrize("kernel_width", [0.0, 0.3])
def test_narrow_kernel_follows_own_residue_node(adk_open, adk_ca_nodes, kernel_width):
    node_vectors = random_node_vectors(adk_ca_nodes.n_nodes)
    weights = interpolation_weights(adk_open.coords, adk_ca_nodes, kernel_width)
    atoms = extend_to_atoms(node_vectors, weights)
    # Every AdK atom belongs to a residue with a Cα: it moves exactly as that Cα.
    expected = node_vectors[:, adk_ca_nodes.owner]
    np.testing.assert_allclose(atoms, expected, atol=1e-12)
    assert (adk_ca_nodes.owner == adk_open.residue_index).all()


def test_wide_kernel_averages_neighbours_and_keeps_node_atoms(adk_open, adk_ca_nodes):
    node_vectors = random_node_vectors(adk_ca_nodes.n_nodes)
    weights = interpolation_weights(adk_open.coords, adk_ca_nodes, 4.0)
    np.testing.assert_allclose(np.asarray(weights.sum(axis=1)).ravel(), 1.0)
    atoms = extend_to_atoms(node_vectors, weights)
    # Cα atoms move exactly as their node; the other atoms are smoothed.
    np.testing.assert_allclose(atoms[:, adk_ca_nodes.atom_indices], node_vectors, atol=1e-12)
    side_chains = np.setdiff1d(np.arange(adk_open.n_atoms), adk_ca_nodes.atom_indices)
    own = node_vectors[:, adk_ca_nodes.owner[side_chains]]
    assert np.abs(atoms[:, side_chains] - own).max() > 0.1
    # A uniform translation of all nodes is reproduced exactly (weights sum to one).
    translation = np.broadcast_to([1.0, -2.0, 0.5], (1, adk_ca_nodes.n_nodes, 3))
    moved = extend_to_atoms(translation, weights)[0]
    np.testing.assert_allclose(moved, np.broadcast_to([1.0, -2.0, 0.5], moved.shape))


def test_all_atom_basis_is_orthonormal(adk_open):
    modes = compute_normal_modes(adk_open, n_modes=10)
    flat = modes.vectors.reshape(10, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(10), atol=1e-10)
    assert modes.vectors.shape == (10, adk_open.n_atoms, 3)
    # Löwdin orthonormalisation moves the interpolated modes only a little.
    ca = modes.vectors[:, modes.cg_indices]
    cosines = np.sum(ca * modes.cg_vectors, axis=(1, 2)) / np.linalg.norm(ca, axis=(1, 2))
    assert cosines.min() > 0.95


def test_mass_weighted_modes_solve_the_generalised_problem(adk_open):
    modes = compute_normal_modes(adk_open, n_modes=5, mass_weighted=True, method="sparse")
    nodes = select_nodes(adk_open, "ca")
    hessian = anm_hessian(nodes.coords).toarray()
    node_masses = np.repeat(nodes.masses, 3)
    values, vectors = scipy.linalg.eigh(hessian, np.diag(node_masses), subset_by_index=(0, 10))
    np.testing.assert_allclose(modes.eigenvalues, values[6:11], rtol=1e-8)
    # Node vectors are M-orthonormal and equal the generalised eigenvectors up to sign.
    flat = modes.cg_vectors.reshape(5, -1)
    np.testing.assert_allclose((flat * node_masses) @ flat.T, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(np.abs(np.sum(flat * node_masses * vectors[:, 6:11].T, axis=1)), 1)
    # The all-atom basis is orthonormal in the atomic mass metric.
    atoms = modes.vectors.reshape(5, -1)
    gram = (atoms * np.repeat(modes.masses, 3)) @ atoms.T
    np.testing.assert_allclose(gram, np.eye(5), atol=1e-10)


def test_orthonormalize_rejects_dependent_vectors():
    vectors = np.random.default_rng(1).normal(size=(2, 10, 3))
    vectors[1] = 2 * vectors[0]
    with pytest.raises(ValueError, match="linearly dependent"):
        orthonormalize(vectors)
    assert orthonormalize(np.zeros((0, 10, 3))).shape == (0, 10, 3)

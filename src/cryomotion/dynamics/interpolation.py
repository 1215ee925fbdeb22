"""Extension of coarse-grained modes to all atoms, then orthonormalisation (seed 000, 2.1).

Each atom's displacement is a normalised kernel average of node displacements,

    u_a = Σ_k w_ak u_k / Σ_k w_ak,
    w_ak = 1 for the atom's own node, exp(-d_ak² / 2σ²) for the other nodes within 3σ,

where d_ak is the distance from the atom to node k and σ the kernel width. An atom thus
follows its own residue's node when the kernel is narrow (σ → 0: each residue translates
with its node, as ProDy's ``extendModel``) and a smooth average of its neighbourhood when
it is wide. Atoms that are nodes themselves move exactly as their node. The extended
vectors are no longer orthogonal; the symmetric (Löwdin) orthonormalisation
U ← (U Uᵀ)^(-1/2) U gives the orthonormal basis closest to them, with no mode privileged.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from cryomotion.dynamics.nodes import NetworkNodes

#: Nodes farther than this many kernel widths from an atom are ignored.
KERNEL_RADIUS = 3.0


def interpolation_weights(
    atom_coords: np.ndarray, nodes: NetworkNodes, kernel_width: float
) -> sp.csr_matrix:
    """Row-normalised (atoms, nodes) sparse weights of the kernel described in the module.

    Parameters
    ----------
    atom_coords : (atoms, 3) Å.
    nodes : the network nodes, with each atom's own node.
    kernel_width : σ in Å; 0 makes each atom follow its own node only.
    """
    atom_coords = np.asarray(atom_coords, dtype=np.float64)
    n_atoms = len(atom_coords)
    own = sp.csr_matrix(
        (np.ones(n_atoms), (np.arange(n_atoms), nodes.owner)), shape=(n_atoms, nodes.n_nodes)
    )
    if kernel_width < 0:
        raise ValueError(f"kernel_width {kernel_width}, expected ≥ 0 Å")
    if kernel_width == 0:
        return own
    near = cKDTree(atom_coords).sparse_distance_matrix(
        cKDTree(nodes.coords), KERNEL_RADIUS * kernel_width, output_type="coo_matrix"
    )
    # sparse_distance_matrix drops zero distances (an atom on a node), which the own-node
    # weight of 1 covers.
    weights = near.copy()
    weights.data = np.exp(-(near.data**2) / (2.0 * kernel_width**2))
    weights = weights.tocsr()
    # The own node weighs 1, replacing its distance-based weight.
    weights = weights - weights.multiply(own) + own
    if nodes.on_atoms:
        # Atoms that are nodes move exactly as their node.
        anchored = np.zeros(n_atoms, dtype=bool)
        anchored[nodes.atom_indices] = True
        keep = sp.diags((~anchored).astype(np.float64))
        weights = keep @ weights + sp.diags(anchored.astype(np.float64)) @ own
    weights = sp.csr_matrix(weights)
    row_sums = np.asarray(weights.sum(axis=1)).ravel()
    return sp.diags(1.0 / row_sums) @ weights


def extend_to_atoms(node_vectors: np.ndarray, weights: sp.spmatrix) -> np.ndarray:
    """All-atom displacements (modes, atoms, 3) from node displacements (modes, nodes, 3)."""
    node_vectors = np.asarray(node_vectors, dtype=np.float64)
    n_modes, n_nodes, _ = node_vectors.shape
    flat = node_vectors.transpose(1, 0, 2).reshape(n_nodes, n_modes * 3)
    atoms = np.asarray(weights @ flat)
    return atoms.reshape(weights.shape[0], n_modes, 3).transpose(1, 0, 2)


def orthonormalize(vectors: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Symmetric (Löwdin) orthonormalisation of (modes, atoms, 3) vectors.

    With ``masses`` (atoms,) in Da the result is orthonormal in the mass-weighted inner
    product Σ_a m_a u_a·v_a; otherwise in the plain one. Raises ``ValueError`` when the
    vectors are linearly dependent.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) == 0:
        return vectors.copy()
    flat = vectors.reshape(len(vectors), -1)
    metric = np.ones(vectors.shape[1]) if masses is None else np.asarray(masses, np.float64)
    weighted = flat * np.repeat(metric, 3)[None, :]
    overlap = weighted @ flat.T
    values, basis = np.linalg.eigh(overlap)
    if values[0] <= 1e-10 * values[-1]:
        raise ValueError("the extended modes are linearly dependent; use a wider kernel")
    inverse_root = (basis / np.sqrt(values)) @ basis.T
    return (inverse_root @ flat).reshape(vectors.shape)

"""The anisotropic network model (ANM): springs between nodes within a cutoff, its Hessian.

The potential is E = Σ_{pairs within the cutoff} k_ij / 2 · (|r_ij| - |r_ij^0|)², whose
Hessian at the reference positions has the 3×3 off-diagonal blocks
H_ij = -k_ij · r_ij r_ijᵀ / |r_ij|² and diagonal blocks H_ii = -Σ_j H_ij (Atilgan et al.
2001, as in ProDy's ``ANM.buildHessian``). The neighbour list comes from a KD-tree and
the sparse Hessian is assembled without a Python loop over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from cryomotion.errors import InputError

#: Cα–Cα virtual bond length (Å): the distance at which a distance-dependent spring is γ.
REFERENCE_DISTANCE = 3.8


class DisconnectedNetworkError(InputError):
    """The elastic network falls apart into separate parts (each with its own rigid modes)."""

    def __init__(self, message: str, component_sizes: Sequence[int]):
        super().__init__(message)
        self.component_sizes = list(component_sizes)


def contact_pairs(coords: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs (i < j) at most ``cutoff`` Å apart.

    Parameters
    ----------
    coords : (nodes, 3) Å.
    cutoff : Å.

    Returns
    -------
    i, j : (pairs,) int64 node indices, sorted by i then j.
    """
    coords = np.asarray(coords, dtype=np.float64)
    pairs = cKDTree(coords).query_pairs(float(cutoff), output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = pairs.astype(np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[order, 0], pairs[order, 1]


def spring_constants(
    distances: np.ndarray, gamma: float = 1.0, distance_exponent: float = 0.0
) -> np.ndarray:
    """Spring constants k = γ · (3.8 Å / distance)^p of springs of the given lengths (Å).

    ``distance_exponent`` p = 0 gives the uniform springs of the classic ANM; p = 2 the
    inverse-square springs of the parameter-free ANM (Yang et al. 2009).
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distance_exponent == 0:
        return np.full(distances.shape, float(gamma))
    return gamma * (REFERENCE_DISTANCE / distances) ** distance_exponent


def check_connected(
    n_nodes: int,
    i: np.ndarray,
    j: np.ndarray,
    cutoff: float,
    labels: Sequence[str] | None = None,
) -> None:
    """Raise ``DisconnectedNetworkError`` unless the springs (i, j) join all nodes into one part."""
    graph = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n_nodes, n_nodes))
    n_parts, part = connected_components(graph, directed=False)
    if n_parts <= 1:
        return
    sizes = np.bincount(part)
    order = np.argsort(-sizes, kind="stable")
    shown = ", ".join(str(s) for s in sizes[order[:5]]) + (", ..." if n_parts > 5 else "")
    smallest = order[-1]
    first = int(np.argmax(part == smallest))
    where = f"node {labels[first]}" if labels is not None else f"node {first}"
    raise DisconnectedNetworkError(
        f"elastic network with cutoff {cutoff:g} Å is disconnected: {n_parts} separate parts "
        f"of {shown} nodes (the smallest holds {where}); expected one connected network "
        f"(increase the cutoff or compute the modes of each part separately)",
        sizes[order],
    )


def anm_hessian(
    coords: np.ndarray,
    cutoff: float = 15.0,
    gamma: float = 1.0,
    distance_exponent: float = 0.0,
    labels: Sequence[str] | None = None,
) -> sp.csc_matrix:
    """Sparse ANM Hessian of nodes at ``coords``.

    Parameters
    ----------
    coords : (nodes, 3) Å.
    cutoff : Å, springs join nodes at most this far apart.
    gamma : spring constant γ (energy / Å²; the eigenvalues scale with it).
    distance_exponent : p in k = γ (3.8 Å / r)^p; 0 for uniform springs.
    labels : (nodes,) names of the nodes, for the error message of a disconnected network.

    Returns
    -------
    (3 nodes, 3 nodes) symmetric ``scipy.sparse.csc_matrix``, coordinates ordered
    x0, y0, z0, x1, ...

    Raises
    ------
    InputError
        ``DisconnectedNetworkError`` when the network is not connected; a plain
        ``InputError`` for a non-positive cutoff or γ, or for two coincident nodes.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords of shape {coords.shape}, expected (nodes, 3)")
    if not cutoff > 0:
        raise InputError(f"cutoff {cutoff}: expected a positive distance in Å")
    if not gamma > 0:
        raise InputError(f"gamma {gamma}: expected a positive spring constant")
    n = len(coords)
    i, j = contact_pairs(coords, cutoff)
    check_connected(n, i, j, cutoff, labels)
    r = coords[j] - coords[i]  # (pairs, 3)
    distance2 = np.einsum("pk,pk->p", r, r)
    if np.any(distance2 == 0):
        p = int(np.argmax(distance2 == 0))
        a, b = (labels[i[p]], labels[j[p]]) if labels is not None else (i[p], j[p])
        raise InputError(f"nodes {a} and {b} coincide (expected distinct node positions)")
    k = spring_constants(np.sqrt(distance2), gamma, distance_exponent)
    # r rᵀ first, then the scale: each block is symmetric to the last bit.
    blocks = (r[:, :, None] * r[:, None, :]) * -(k / distance2)[:, None, None]  # (pairs, 3, 3)
    diagonal = np.zeros((n, 3, 3))
    flat = blocks.reshape(len(blocks), 9)
    for c in range(9):
        column = np.bincount(i, weights=flat[:, c], minlength=n)
        column += np.bincount(j, weights=flat[:, c], minlength=n)
        diagonal.reshape(n, 9)[:, c] = -column
    return _assemble(n, i, j, blocks, diagonal)


def _assemble(
    n: int, i: np.ndarray, j: np.ndarray, blocks: np.ndarray, diagonal: np.ndarray
) -> sp.csc_matrix:
    """The symmetric (3n, 3n) matrix with 3×3 blocks ``blocks`` at (i, j) and (j, i), and
    ``diagonal`` at (k, k), written straight into compressed-sparse arrays."""
    block_rows = np.concatenate([i, j, np.arange(n)])
    block_cols = np.concatenate([j, i, np.arange(n)])
    data = np.concatenate([blocks, blocks, diagonal])
    order = np.argsort(block_rows * n + block_cols, kind="stable")
    block_rows, block_cols, data = block_rows[order], block_cols[order], data[order]
    per_row = np.bincount(block_rows, minlength=n)  # blocks in each block row
    row_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_row, out=row_start[1:])
    position = np.arange(len(block_rows)) - row_start[block_rows]  # rank within its row
    # Entry (block b, row a, column c) of block row r lands at
    # 9 row_start[r] + 3 a per_row[r] + 3 position[b] + c.
    a = np.arange(3)[None, :, None]
    c = np.arange(3)[None, None, :]
    base = (9 * row_start[block_rows] + 3 * position)[:, None, None]
    target = (base + 3 * a * per_row[block_rows][:, None, None] + c).reshape(-1)
    values = np.empty(9 * len(block_rows))
    values[target] = data.reshape(-1)
    columns = np.empty(9 * len(block_rows), dtype=np.int64)
    columns[target] = np.broadcast_to(3 * block_cols[:, None, None] + c, data.shape).reshape(-1)
    indptr = (9 * row_start[:-1, None] + 3 * np.arange(3)[None, :] * per_row[:, None]).reshape(-1)
    indptr = np.append(indptr, 9 * row_start[-1])
    # The matrix is symmetric: its compressed rows are its compressed columns.
    return sp.csc_matrix((values, columns, indptr), shape=(3 * n, 3 * n))

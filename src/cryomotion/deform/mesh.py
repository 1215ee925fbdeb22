"""A tetrahedral mesh over a density, linear finite-element interpolation on it, and the
local rigidity of a flow on it (3DFlex, seed 003, "Regularization").

The mesh's vertices lie on a cubic lattice of spacing ``spacing`` Å inside a dilated
threshold mask of the consensus density; its elements are the Delaunay tetrahedra of those
vertices whose centroid lies inside the mask (elements spanning empty space between
domains are dropped). Each element carries a weight in [0, 1]: its mean density relative
to the densest element, so the rigidity prior is strong inside the molecule and absent in
solvent, where flows may compress and expand freely.

A flow given at the vertices (V, 3) is interpolated to any point with the linear FEM shape
functions of the element holding it: its barycentric coordinates, computed once per point
(4 vertex indices and 4 weights per point: a sparse (points × vertices) matrix with 4
entries per row). A point outside every kept element takes the affine extension of the
nearest kept element (barycentric weights outside [0, 1]), so an affine flow is still
interpolated exactly everywhere.

Within element j the deformation x -> x + u(x) is affine, x -> A_j x + b_j, with
A_j = F_j E_j⁻¹ (E_j the rest edge vectors, F_j the deformed ones). The rigidity penalty is
Σ_j w_j Σ_l (s_jl − 1)² over the singular values s_jl of A_j (seed eq. 5): zero for a
rigid motion, (s − 1)² per stretched axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import Delaunay, cKDTree

from cryomotion.errors import InputError
from cryomotion.npz_arrays import INTEGER, Array, load_arrays


@dataclass(frozen=True, eq=False)
class TetMesh:
    """vertices (V, 3) Å; elements (E, 4) vertex indices; weights (E,) in [0, 1]."""

    vertices: np.ndarray
    elements: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        vertices = np.asarray(self.vertices, dtype=np.float64)
        elements = np.asarray(self.elements, dtype=np.int64)
        weights = np.asarray(self.weights, dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices {vertices.shape}: expected (V, 3)")
        if elements.ndim != 2 or elements.shape[1] != 4 or len(elements) == 0:
            raise ValueError(f"elements {elements.shape}: expected (E ≥ 1, 4)")
        if elements.min() < 0 or elements.max() >= len(vertices):
            raise ValueError("element vertex index out of range")
        if weights.shape != (len(elements),):
            raise ValueError(f"weights {weights.shape}: expected ({len(elements)},)")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "weights", weights)

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    def edges(self) -> np.ndarray:
        """(n_edges, 2) unique vertex pairs of the elements' edges (for display)."""
        pairs = self.elements[:, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]].reshape(-1, 2)
        return np.unique(np.sort(pairs, axis=1), axis=0)

    def rest_edge_inverse(self) -> np.ndarray:
        """(E, 3, 3) E_j⁻¹, E_j = [v1 − v0, v2 − v0, v3 − v0] as columns."""
        corners = self.vertices[self.elements]  # (E, 4, 3)
        edges = (corners[:, 1:] - corners[:, :1]).transpose(0, 2, 1)
        return np.linalg.inv(edges)

    def save(self, path: str | Path) -> None:
        np.savez(path, vertices=self.vertices, elements=self.elements, weights=self.weights)

    @classmethod
    def load(cls, path: str | Path) -> TetMesh:
        data = load_arrays(
            path,
            {
                "vertices": ("vertices", 3),
                "elements": Array(("elements", 4), INTEGER),
                "weights": ("elements",),
            },
            what="a tetrahedral mesh written by 'cryomotion train flex'",
        )
        return cls(data["vertices"], data["elements"], data["weights"])


def voxel_centers(shape: tuple[int, int, int], voxel_size: float, origin) -> np.ndarray:
    """(z, y, x, 3) Å as (x, y, z): centres of the voxels of a [z, y, x] map whose voxel
    (k, j, i) sits at ``origin + (i, j, k)·voxel_size`` (``analysis.maps`` convention)."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return np.stack([i, j, k], axis=-1) * voxel_size + np.asarray(origin, dtype=np.float64)


def sample_map(
    density: np.ndarray, voxel_size: float, origin, points: np.ndarray, order: int = 1
) -> np.ndarray:
    """(P,) the map [z, y, x] interpolated at ``points`` (P, 3) Å (0 outside)."""
    index = (np.asarray(points, dtype=np.float64) - np.asarray(origin)) / voxel_size
    return ndimage.map_coordinates(
        np.asarray(density, dtype=np.float64), index[:, ::-1].T, order=order, mode="constant"
    )


def threshold_mask(density: np.ndarray, threshold: float, dilation_voxels: int) -> np.ndarray:
    """Boolean [z, y, x]: density ≥ ``threshold``, dilated by ``dilation_voxels`` (a ball)."""
    mask = np.asarray(density) >= threshold
    if not mask.any():
        raise InputError(f"no voxel of the consensus density reaches the threshold {threshold:.4g}")
    if dilation_voxels > 0:
        r = int(dilation_voxels)
        grid = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
        ball = (grid**2).sum(0) <= r * r
        mask = ndimage.binary_dilation(mask, structure=ball)
    return mask


def soft_mask(mask: np.ndarray, edge_voxels: float = 6.0) -> np.ndarray:
    """A binary [z, y, x] mask with a Gaussian edge of ``edge_voxels`` (float32 in [0, 1]):
    a hard edge multiplied into two maps correlates them at every frequency."""
    soft = ndimage.gaussian_filter(np.asarray(mask, dtype=np.float64), edge_voxels / 2)
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def build_mesh(
    density: np.ndarray,
    voxel_size: float,
    origin,
    threshold: float,
    spacing: float,
    dilation: float | None = None,
) -> TetMesh:
    """The tetrahedral mesh of a density map [z, y, x] (module docstring).

    Vertices: a lattice of ``spacing`` Å (aligned to the map's origin) inside the mask
    density ≥ ``threshold`` dilated by ``dilation`` Å (default: one ``spacing``, so the mesh
    covers the molecule's surface). Elements: Delaunay tetrahedra with their centroid in the
    mask. Weights: each element's mean density at its centroid and vertices over the largest,
    clipped to [0, 1].
    """
    if not spacing > 0:
        raise InputError(f"--mesh-spacing {spacing} Å: expected a positive length")
    dilation = spacing if dilation is None else dilation
    mask = threshold_mask(density, threshold, int(np.ceil(dilation / voxel_size)))
    shape = np.array(mask.shape)
    extent = shape[::-1] * voxel_size  # (x, y, z) Å
    axes = [np.arange(0.0, extent[a] + 1e-9, spacing) for a in range(3)]
    lattice = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    lattice = lattice + np.asarray(origin, dtype=np.float64)
    inside = sample_map(mask.astype(np.float64), voxel_size, origin, lattice, order=0) > 0.5
    vertices = lattice[inside]
    if len(vertices) < 4:
        raise InputError(
            f"--mesh-spacing {spacing} Å leaves {len(vertices)} mesh vertices in the density's "
            "mask (expected at least 4: use a finer spacing)"
        )
    # joggle: a regular lattice is degenerate (co-spherical points) for Delaunay
    triangulation = Delaunay(vertices, qhull_options="QJ")
    elements = triangulation.simplices.astype(np.int64)
    centroids = vertices[elements].mean(axis=1)
    keep = sample_map(mask.astype(np.float64), voxel_size, origin, centroids, order=0) > 0.5
    corners = vertices[elements]
    volume = np.abs(np.linalg.det(corners[:, 1:] - corners[:, :1])) / 6
    keep &= volume > 1e-6 * spacing**3  # flat slivers have no affine map
    elements = elements[keep]
    if len(elements) == 0:
        raise InputError("no mesh element lies inside the density's mask (use a finer spacing)")
    used = np.unique(elements)
    renumber = np.full(len(vertices), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    vertices, elements = vertices[used], renumber[elements]
    samples = np.concatenate([vertices[elements], vertices[elements].mean(1, keepdims=True)], 1)
    values = sample_map(density, voxel_size, origin, samples.reshape(-1, 3)).reshape(-1, 5)
    weights = np.clip(values.mean(axis=1), 0, None)
    weights = np.clip(weights / max(weights.max(), 1e-30), 0.0, 1.0)
    return TetMesh(vertices, elements, weights)


def barycentric_weights(mesh: TetMesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear FEM shape functions of ``points`` (P, 3) Å on ``mesh``: (vertex index (P, 4),
    weight (P, 4)); the weights of a point sum to 1. A point in no element takes the
    affine extension of the element with the nearest centroid."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    corners = mesh.vertices[mesh.elements]  # (E, 4, 3)
    inverse = mesh.rest_edge_inverse()  # (E, 3, 3)

    def coordinates(element: np.ndarray, where: np.ndarray) -> np.ndarray:
        local = np.einsum("pij,pj->pi", inverse[element], where - corners[element, 0])
        return np.concatenate([1 - local.sum(1, keepdims=True), local], axis=1)

    # candidate elements: those whose centroid is among the nearest; pick one containing it
    tree = cKDTree(corners.mean(axis=1))
    k = min(16, mesh.n_elements)
    _, candidates = tree.query(points, k=k)
    candidates = candidates.reshape(len(points), k)
    chosen = candidates[:, 0].copy()
    best = np.full(len(points), -np.inf)
    for c in range(k):
        weights = coordinates(candidates[:, c], points)
        worst = weights.min(axis=1)  # ≥ 0 inside the element
        better = worst > best + 1e-12
        chosen[better] = candidates[better, c]
        best[better] = worst[better]
    weights = coordinates(chosen, points)
    return mesh.elements[chosen], weights


def interpolate(
    vertex_values: torch.Tensor, index: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """(..., V, c) vertex values -> (..., P, c) at the points of ``index``, ``weights``
    (P, 4) (``barycentric_weights``)."""
    gathered = vertex_values.index_select(-2, index.reshape(-1))
    gathered = gathered.reshape(*vertex_values.shape[:-2], *index.shape, vertex_values.shape[-1])
    return (gathered * weights.to(vertex_values.dtype)[..., None]).sum(dim=-2)


def element_affine(
    rest_vertices: torch.Tensor,
    elements: torch.Tensor,
    edge_inverse: torch.Tensor,
    flow: torch.Tensor,
) -> torch.Tensor:
    """(..., E, 3, 3) the linear part A_j of each element's map x -> x + u(x), from the
    vertex flow (..., V, 3) Å: A_j = F_j E_j⁻¹ with F_j the deformed edge vectors."""
    moved = rest_vertices.to(flow.dtype) + flow  # (..., V, 3)
    corners = moved.index_select(-2, elements.reshape(-1))
    corners = corners.reshape(*flow.shape[:-2], *elements.shape, 3)  # (..., E, 4, 3)
    deformed_edges = (corners[..., 1:, :] - corners[..., :1, :]).transpose(-1, -2)
    return deformed_edges @ edge_inverse.to(flow.dtype)


def rigidity_penalty(affine: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(...,) Σ_j w_j Σ_l (s_jl − 1)² over the singular values of ``affine`` (..., E, 3, 3)
    with element weights (E,) (seed eq. 5, for one image)."""
    singular = torch.linalg.svdvals(affine)
    return ((singular - 1).square().sum(-1) * weights.to(affine.dtype)).sum(-1)

"""Backbone frames: one rigid frame per residue, from its N, Cα and C atoms.

The frame of a residue has its origin at the Cα and the axes of AlphaFold's
``rigidFrom3Points`` (Jumper et al. 2021, Suppl. Alg. 21): e1 along C − Cα, e2 the part of
N − Cα orthogonal to e1 (normalised), e3 = e1 × e2. Its rotation R (3, 3) has the axes as
columns, so an atom at x has local coordinates Rᵀ (x − origin). A residue lacking one of
the three atoms (a ligand, a water, a truncated residue) gets the identity axes at its
centroid, which still moves all of its atoms rigidly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryomotion.structure.model import AtomicModel


def _atom_index(model: AtomicModel, name: str) -> np.ndarray:
    """(residues,) index of each residue's atom ``name`` (first one), -1 where it has none."""
    index = np.full(model.n_residues, -1, dtype=np.int64)
    hits = np.nonzero(model.atom_names == name)[0]
    # reversed so that the first atom of a residue with that name wins
    index[model.residue_index[hits[::-1]]] = hits[::-1]
    return index


@dataclass(frozen=True, eq=False)
class BackboneFrames:
    """Residue frames of a model.

    origins : (R, 3) Å, the Cα (or the residue centroid where it has no full backbone).
    rotations : (R, 3, 3), the frame's axes as columns (identity without a full backbone).
    n_index, ca_index, c_index : (R,) atom indices of N, Cα and C, -1 where missing.
    has_backbone : (R,) bool, the residue has N, Cα and C.
    """

    origins: np.ndarray
    rotations: np.ndarray
    n_index: np.ndarray
    ca_index: np.ndarray
    c_index: np.ndarray
    has_backbone: np.ndarray

    @property
    def n_residues(self) -> int:
        return len(self.origins)


def frame_axes(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Frame rotations (..., 3, 3) (axes as columns) from N, Cα, C positions (..., 3)."""
    e1 = c - ca
    e1 = e1 / np.linalg.norm(e1, axis=-1, keepdims=True)
    u2 = n - ca
    u2 = u2 - (u2 * e1).sum(-1, keepdims=True) * e1
    e2 = u2 / np.linalg.norm(u2, axis=-1, keepdims=True)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], axis=-1)


def backbone_frames(model: AtomicModel) -> BackboneFrames:
    """The residue frames of ``model`` (see the module docstring)."""
    n_index = _atom_index(model, "N")
    ca_index = _atom_index(model, "CA")
    c_index = _atom_index(model, "C")
    has_backbone = (n_index >= 0) & (ca_index >= 0) & (c_index >= 0)
    coords = model.coords
    counts = np.bincount(model.residue_index, minlength=model.n_residues)
    centroids = (
        np.stack(
            [np.bincount(model.residue_index, coords[:, k], model.n_residues) for k in range(3)], 1
        )
        / np.maximum(counts, 1)[:, None]
    )
    origins = centroids.copy()
    rotations = np.broadcast_to(np.eye(3), (model.n_residues, 3, 3)).copy()
    full = np.nonzero(has_backbone)[0]
    if len(full):
        n, ca, c = (coords[index[full]] for index in (n_index, ca_index, c_index))
        origins[full] = ca
        rotations[full] = frame_axes(n, ca, c)
    return BackboneFrames(origins, rotations, n_index, ca_index, c_index, has_backbone)


def local_coordinates(model: AtomicModel, frames: BackboneFrames) -> np.ndarray:
    """(atoms, 3) Å: each atom in its residue's frame, Rᵀ (x − origin)."""
    residue = model.residue_index
    offset = model.coords - frames.origins[residue]
    return np.einsum("aji,aj->ai", frames.rotations[residue], offset)

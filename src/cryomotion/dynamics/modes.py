"""The normal-modes object: eigenvalues, all-atom and coarse-grained bases, parameters; .npz I/O.

The .npz file (``NormalModes.save``) holds plain arrays only, read back with
``np.load(..., allow_pickle=False)``:

- ``eigenvalues`` (d,): ascending, non-trivial (units of γ; per Da when mass-weighted);
- ``vectors`` (d, atoms, 3): the orthonormal all-atom basis, atoms in the order of the
  model as read;
- ``coords`` (atoms, 3): the reference coordinates X0, Å;
- ``masses`` (atoms,): atomic masses, Da;
- ``cg_vectors`` (d, nodes, 3): the network's eigenvectors (node displacements);
- ``cg_indices`` (nodes,): the atom standing for each node;
- ``node_coords`` (nodes, 3): node positions, Å;
- ``rigid_eigenvalues`` (zeros,): the numerically zero eigenvalues set apart;
- 0-d arrays: ``nodes`` ("ca", "centroid", "heavy"), ``cutoff`` (Å), ``gamma``,
  ``distance_exponent``, ``kernel_width`` (Å), ``mass_weighted``, ``source`` (the model
  file), ``version`` (cryomotion's), ``format_version``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.npz_arrays import INTEGER, NUMERIC, TEXT, Array, load_arrays

FORMAT_VERSION = 1

_ARRAYS = (
    "eigenvalues",
    "vectors",
    "coords",
    "masses",
    "cg_vectors",
    "cg_indices",
    "node_coords",
    "rigid_eigenvalues",
)
_SCALARS = {
    "nodes": str,
    "cutoff": float,
    "gamma": float,
    "distance_exponent": float,
    "kernel_width": float,
    "mass_weighted": bool,
    "source": str,
    "version": str,
}


@dataclass(frozen=True, eq=False)
class NormalModes:
    """Normal modes of an elastic network model, extended to all atoms.

    Attributes
    ----------
    eigenvalues : (d,) ascending non-trivial eigenvalues of the network Hessian.
    vectors : (d, atoms, 3) all-atom basis U, orthonormal (Σ_a u_a·v_a = δ, or
        Σ_a m_a u_a·v_a = δ when ``mass_weighted``); a conformation is X0 + Σ_l z_l U_l.
    coords : (atoms, 3) Å, the reference coordinates X0 the modes were computed at.
    masses : (atoms,) Da.
    cg_vectors : (d, nodes, 3) the network's own eigenvectors (node displacements),
        orthonormal in the same metric (node masses when ``mass_weighted``).
    cg_indices : (nodes,) the atom standing for each node.
    node_coords : (nodes, 3) Å.
    rigid_eigenvalues : (zeros,) the zero eigenvalues set apart (6 rigid-body modes).
    nodes, cutoff, gamma, distance_exponent, kernel_width, mass_weighted : the parameters.
    source : the model file; version : the cryomotion version that computed them.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    coords: np.ndarray
    masses: np.ndarray
    cg_vectors: np.ndarray
    cg_indices: np.ndarray
    node_coords: np.ndarray
    rigid_eigenvalues: np.ndarray
    nodes: str
    cutoff: float
    gamma: float
    distance_exponent: float
    kernel_width: float
    mass_weighted: bool
    source: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        d, n_atoms, n_nodes = len(self.eigenvalues), len(self.coords), len(self.node_coords)
        expected = {
            "eigenvalues": (d,),
            "vectors": (d, n_atoms, 3),
            "coords": (n_atoms, 3),
            "masses": (n_atoms,),
            "cg_vectors": (d, n_nodes, 3),
            "cg_indices": (n_nodes,),
            "node_coords": (n_nodes, 3),
        }
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name))
            if value.size == 0:
                value = value.reshape(shape)
            if value.shape != shape:
                raise ValueError(f"NormalModes.{name} has shape {value.shape}, expected {shape}")
            dtype = np.int64 if name == "cg_indices" else np.float64
            value = np.ascontiguousarray(value, dtype=dtype)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        rigid = np.asarray(self.rigid_eigenvalues, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "rigid_eigenvalues", rigid)

    @property
    def n_modes(self) -> int:
        return len(self.eigenvalues)

    @property
    def n_atoms(self) -> int:
        return len(self.coords)

    @property
    def n_nodes(self) -> int:
        return len(self.node_coords)

    def first(self, n_modes: int) -> NormalModes:
        """The ``n_modes`` lowest modes (all of them if there are fewer)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("eigenvalues", "vectors", "cg_vectors"):
            values[name] = values[name][:n_modes]
        return NormalModes(**values)

    def conformations(self, amplitudes: np.ndarray) -> np.ndarray:
        """Coordinates X0 + Σ_l z_l U_l (..., atoms, 3) Å for amplitudes z (..., d)."""
        amplitudes = np.asarray(amplitudes, dtype=np.float64)
        if amplitudes.shape[-1:] != (self.n_modes,):
            raise ValueError(
                f"amplitudes of shape {amplitudes.shape}, expected (..., {self.n_modes})"
            )
        return self.coords + np.tensordot(amplitudes, self.vectors, axes=1)

    def sweep(self, mode: int, rms_amplitude: float, frames: int) -> np.ndarray:
        """Conformations (frames, atoms, 3) Å along one mode, for a movie that loops.

        The amplitude follows one period of a sine, 0 → +A → 0 → -A, where A moves the
        atoms by ``rms_amplitude`` Å root-mean-square.
        """
        vector = self.vectors[mode]
        rms = np.sqrt(np.sum(vector**2) / self.n_atoms)
        phases = np.sin(2.0 * np.pi * np.arange(frames) / frames)
        return self.coords + (rms_amplitude / rms) * phases[:, None, None] * vector

    def save(self, path: str | os.PathLike) -> Path:
        """Write the modes to an .npz file (atomically), arrays only (no pickled objects)."""
        path = Path(path)
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update(
            {name: np.array(kind(getattr(self, name))) for name, kind in _SCALARS.items()}
        )
        arrays["format_version"] = np.array(FORMAT_VERSION)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NormalModes:
        """Read modes written by ``save``; ``InputError`` for a missing or malformed file."""
        path = Path(path)
        if not path.is_file():
            raise InputError(
                f"{path}: no such normal-modes file (expected an .npz from 'cryomotion nma')"
            )
        content = load_arrays(
            path,
            {
                "eigenvalues": ("modes",),
                "vectors": ("modes", "atoms", 3),
                "coords": ("atoms", 3),
                "masses": ("atoms",),
                "cg_vectors": ("modes", "nodes", 3),
                "cg_indices": Array(("nodes",), INTEGER),
                "node_coords": ("nodes", 3),
                "rigid_eigenvalues": 1,
                **{
                    key: Array((), TEXT if kind is str else NUMERIC)
                    for key, kind in _SCALARS.items()
                },
            },
            optional={"format_version": Array((), INTEGER)},
            what="a normal-modes file written by 'cryomotion nma'",
        )
        version = int(content.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise InputError(
                f"{path}: format_version {version} is newer than this cryomotion reads "
                f"(expected ≤ {FORMAT_VERSION})"
            )
        values = {key: content[key] for key in _ARRAYS}
        values.update({key: kind(content[key].item()) for key, kind in _SCALARS.items()})
        try:
            return cls(**values)
        except ValueError as err:
            raise InputError(f"{path}: inconsistent arrays ({err})") from None

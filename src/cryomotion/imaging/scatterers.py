"""What the rendered points are: atoms, residue beads or Gaussian pseudo-atoms.

A ``Scatterers`` value names, for S scatterers, their form factors (one 5-Gaussian or
Gaussian table row per type) and which input point carries each one. The renderer
(``cryomotion.imaging.renderer.AtomRenderer``) is built from it; a deformation says which
scatterers its points are.

Form factor of type t: f_t(s) = Σ_i a_ti exp(-b_ti s²), a in Å, b in Å², s = |q|/2. A
normalized 3-D Gaussian of standard deviation σ Å has f(s) = exp(-2π²σ²|q|²), i.e. a = 1,
b = 8π²σ².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryomotion.errors import InputError
from cryomotion.structure.form_factors import scattering_table
from cryomotion.structure.model import AtomicModel


def residue_beads(model: AtomicModel) -> np.ndarray:
    """(residues,) the atom index carrying each residue's bead in coarse rendering: its Cα, or
    for a residue without one (ligand, nucleotide, water) the atom nearest its centroid."""
    beads = model.ca_index.copy()
    missing = beads < 0
    if missing.any():
        counts = np.bincount(model.residue_index, minlength=model.n_residues)
        centroids = (
            np.stack(
                [
                    np.bincount(model.residue_index, model.coords[:, axis], model.n_residues)
                    for axis in range(3)
                ],
                axis=1,
            )
            / np.maximum(counts, 1)[:, None]
        )
        distance = ((model.coords - centroids[model.residue_index]) ** 2).sum(1)
        nearest = np.lexsort((distance, model.residue_index))  # by residue, then distance
        first = np.searchsorted(model.residue_index[nearest], np.arange(model.n_residues))
        beads[missing] = nearest[first[missing]]
    return beads


def gaussian_form_factor(sigma_in_angstroms: float, terms: int = 1) -> tuple[np.ndarray, ...]:
    """(a, b) (1, terms) of a normalized 3-D Gaussian of std σ Å (zero-padded to ``terms``)."""
    if not sigma_in_angstroms > 0:
        raise InputError(f"Gaussian sigma {sigma_in_angstroms} Å: expected a positive width")
    a = np.zeros((1, terms))
    b = np.zeros((1, terms))
    a[0, 0] = 1.0
    b[0, 0] = 8 * math.pi**2 * sigma_in_angstroms**2
    return a, b


@dataclass(frozen=True, eq=False)
class Scatterers:
    """S scatterers of T types.

    form_factor_a, form_factor_b : (T, G) coefficients, Å and Å² (b ≥ 0).
    type_index : (S,) type of each scatterer.
    gather_index : optional (S,) index of the input point whose coordinates carry each
        scatterer (beads: the residue's Cα among all atoms); None: scatterer s is point s,
        and the renderer then requires exactly S points.
    weights : optional (S,) fixed amplitude of each scatterer (beads: the residue's summed
        f_e(0)); None: 1.

    Arrays are stored as float64 / int64 NumPy arrays and validated on construction.
    """

    form_factor_a: np.ndarray
    form_factor_b: np.ndarray
    type_index: np.ndarray
    gather_index: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self):
        a = np.asarray(self.form_factor_a, dtype=np.float64)
        b = np.asarray(self.form_factor_b, dtype=np.float64)
        types = np.asarray(self.type_index, dtype=np.int64).reshape(-1)
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(f"form factor a {a.shape} and b {b.shape}: expected (T, G)")
        if len(types) == 0:
            raise InputError("nothing to render: no scatterers")
        if types.min() < 0 or types.max() >= a.shape[0]:
            raise ValueError(f"type_index outside 0…{a.shape[0] - 1}")
        if (b < 0).any():
            raise InputError("form factor b coefficients must be non-negative (Å²)")
        gather = self.gather_index
        if gather is not None:
            gather = np.asarray(gather, dtype=np.int64).reshape(-1)
            if gather.shape != types.shape or gather.min() < 0:
                raise ValueError("gather_index must hold one non-negative atom index per scatterer")
        weights = self.weights
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
            if weights.shape != types.shape:
                raise ValueError(
                    f"weights {weights.shape}: expected one per scatterer ({len(types)},)"
                )
        for name, value in (
            ("form_factor_a", a),
            ("form_factor_b", b),
            ("type_index", types),
            ("gather_index", gather),
            ("weights", weights),
        ):
            object.__setattr__(self, name, value)

    @property
    def n_scatterers(self) -> int:
        return len(self.type_index)

    @property
    def n_types(self) -> int:
        return self.form_factor_a.shape[0]

    @property
    def min_points(self) -> int:
        """The fewest input points the scatterers need (S without a gather index)."""
        if self.gather_index is None:
            return self.n_scatterers
        return int(self.gather_index.max()) + 1

    @classmethod
    def atoms(cls, model: AtomicModel) -> Scatterers:
        """``model``'s atoms with their elements' 5-Gaussian electron form factors."""
        if model.n_atoms == 0:
            raise InputError(f"model {model.source or ''} has no atoms to render")
        _, a, b, type_index = scattering_table(model.elements)
        return cls(a, b, type_index)

    @classmethod
    def residue_beads(cls, model: AtomicModel, sigma_in_angstroms: float = 2.0) -> Scatterers:
        """One bead per residue at its Cα (``residue_beads``): a normalized 3-D Gaussian of std
        σ Å with amplitude the residue's summed f_e(0) over its atoms (cryoSPHERE's density
        model). The points are still all of ``model``'s atoms."""
        if model.n_atoms == 0:
            raise InputError(f"model {model.source or ''} has no atoms to render")
        _, a, _, type_index = scattering_table(model.elements)
        bead_a, bead_b = gaussian_form_factor(sigma_in_angstroms, terms=5)
        totals = np.bincount(
            model.residue_index, weights=a.sum(1)[type_index], minlength=model.n_residues
        )
        return cls(
            bead_a,
            bead_b,
            np.zeros(model.n_residues, dtype=np.int64),
            gather_index=residue_beads(model),
            weights=totals,
        )

    @classmethod
    def gaussian_points(cls, n_points: int, sigma_in_angstroms: float) -> Scatterers:
        """``n_points`` Gaussian pseudo-atoms of std σ Å and unit integral (amplitudes, e.g.
        learned, multiply them at render time)."""
        if int(n_points) < 1:
            raise InputError(f"{n_points} Gaussian points: expected at least one")
        a, b = gaussian_form_factor(sigma_in_angstroms)
        return cls(a, b, np.zeros(int(n_points), dtype=np.int64))

"""The atomic model type: an immutable table of atoms with coordinates in Å."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

BACKBONE_NAMES = ("N", "CA", "C", "O")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class AtomicModel:
    """Atoms of one conformation, in the order of the file they were read from.

    Attributes
    ----------
    coords : (atoms, 3) float64, Å, in the frame of the consensus map the model was docked
        into (coordinates start at the map's corner).
    elements : (atoms,) str, element symbols ("C", "N", "O", "S", "FE", ...), upper case.
    atom_names, residue_names : (atoms,) str.
    residue_numbers : (atoms,) int, the author's sequence numbers.
    insertion_codes : (atoms,) str, "" where none.
    chain_ids : (atoms,) str.
    b_factors, occupancies : (atoms,) float.
    is_hetero : (atoms,) bool, HETATM records.
    residue_index : (atoms,) int, 0-based index of each atom's residue in file order.
    ca_index : (residues,) int, atom index of each residue's Cα, -1 where a residue has none.
    """

    coords: np.ndarray
    elements: np.ndarray
    atom_names: np.ndarray
    residue_names: np.ndarray
    residue_numbers: np.ndarray
    insertion_codes: np.ndarray
    chain_ids: np.ndarray
    b_factors: np.ndarray
    occupancies: np.ndarray
    is_hetero: np.ndarray
    residue_index: np.ndarray = field(init=False)
    ca_index: np.ndarray = field(init=False)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.coords)
        coords = np.asarray(self.coords, dtype=np.float64).reshape(n, 3)
        object.__setattr__(self, "coords", _frozen(coords))
        for name, dtype in (
            ("elements", str),
            ("atom_names", str),
            ("residue_names", str),
            ("residue_numbers", np.int64),
            ("insertion_codes", str),
            ("chain_ids", str),
            ("b_factors", np.float64),
            ("occupancies", np.float64),
            ("is_hetero", bool),
        ):
            value = np.asarray(getattr(self, name)).astype(dtype)
            if value.shape != (n,):
                raise ValueError(f"AtomicModel.{name} has shape {value.shape}, expected ({n},)")
            object.__setattr__(self, name, _frozen(value))
        # A residue starts where chain, number or insertion code changes.
        key_change = np.ones(n, dtype=bool)
        if n > 1:
            key_change[1:] = (
                (self.chain_ids[1:] != self.chain_ids[:-1])
                | (self.residue_numbers[1:] != self.residue_numbers[:-1])
                | (self.insertion_codes[1:] != self.insertion_codes[:-1])
            )
        residue_index = np.cumsum(key_change) - 1
        object.__setattr__(self, "residue_index", _frozen(residue_index))
        n_residues = int(residue_index[-1]) + 1 if n else 0
        ca_index = np.full(n_residues, -1, dtype=np.int64)
        is_ca = (self.atom_names == "CA") & (self.elements == "C")
        ca_index[residue_index[is_ca]] = np.nonzero(is_ca)[0]
        object.__setattr__(self, "ca_index", _frozen(ca_index))

    @property
    def n_atoms(self) -> int:
        return len(self.coords)

    @property
    def n_residues(self) -> int:
        return len(self.ca_index)

    @property
    def residue_chain_ids(self) -> np.ndarray:
        """(residues,) chain id of each residue."""
        first = np.searchsorted(self.residue_index, np.arange(self.n_residues))
        return self.chain_ids[first]

    @property
    def residue_first_atom(self) -> np.ndarray:
        """(residues,) index of each residue's first atom."""
        return np.searchsorted(self.residue_index, np.arange(self.n_residues))

    def select(self, mask: np.ndarray) -> AtomicModel:
        """A new model holding the atoms where ``mask`` (bool, or integer indices) selects."""
        index = np.asarray(mask)
        if index.dtype == bool:
            index = np.nonzero(index)[0]
        return AtomicModel(
            coords=self.coords[index],
            elements=self.elements[index],
            atom_names=self.atom_names[index],
            residue_names=self.residue_names[index],
            residue_numbers=self.residue_numbers[index],
            insertion_codes=self.insertion_codes[index],
            chain_ids=self.chain_ids[index],
            b_factors=self.b_factors[index],
            occupancies=self.occupancies[index],
            is_hetero=self.is_hetero[index],
            source=self.source,
        )

    def with_coords(self, coords: np.ndarray) -> AtomicModel:
        """The same atoms at new coordinates, (atoms, 3) in Å."""
        coords = np.asarray(coords, dtype=np.float64)
        if coords.shape != self.coords.shape:
            raise ValueError(f"coords shape {coords.shape} != model shape {self.coords.shape}")
        return replace(self, coords=coords)

    def ca(self) -> AtomicModel:
        """The Cα atoms, one per residue that has one."""
        return self.select(self.ca_index[self.ca_index >= 0])

    def heavy_atoms(self) -> AtomicModel:
        """All atoms except hydrogen and deuterium."""
        return self.select(~np.isin(self.elements, ("H", "D")))

    def __repr__(self) -> str:
        chains = ",".join(dict.fromkeys(self.chain_ids.tolist())) or "-"
        return (
            f"AtomicModel({self.n_atoms} atoms, {self.n_residues} residues, chains [{chains}]"
            + (f", from {self.source}" if self.source else "")
            + ")"
        )

"""Coarse-graining: the nodes of an elastic network chosen from an atomic model.

Three node sets:

- ``"ca"``: one node per residue, on its Cα atom (amino acids) or C4' atom (nucleotides);
  residues with neither (caps, ligands, waters) carry no node.
- ``"centroid"``: one node per residue, at the centroid of its heavy atoms.
- ``"heavy"``: every heavy atom is a node (small molecules, peptides).

Every atom of the model *follows* one node, its own: the node of its residue, or the
nearest node where its residue has none (and, for ``"heavy"``, the nearest heavy atom for
a hydrogen). The interpolation of modes to all atoms starts from this assignment.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from cryomotion.errors import InputError
from cryomotion.structure.model import AtomicModel

NODE_KINDS = ("ca", "centroid", "heavy")


@dataclass(frozen=True, eq=False)
class NetworkNodes:
    """The nodes of an elastic network and how the atoms of the model map onto them.

    Attributes
    ----------
    kind : "ca", "centroid" or "heavy".
    coords : (nodes, 3) float64, Å, node positions.
    atom_indices : (nodes,) int, the atom standing for each node: the node itself for
        "ca" and "heavy"; the residue's Cα (else its atom nearest the centroid) for
        "centroid".
    owner : (atoms,) int, the node each atom follows.
    on_atoms : bool, True when nodes sit on atoms ("ca", "heavy"): those atoms move
        exactly as their node.
    masses : (nodes,) float64, Da, summed atomic masses of the atoms following each node.
    labels : (nodes,) str, "chain:residue-number atom-name" for messages.
    """

    kind: str
    coords: np.ndarray
    atom_indices: np.ndarray
    owner: np.ndarray
    on_atoms: bool
    masses: np.ndarray
    labels: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.coords)


def atomic_masses(elements: np.ndarray) -> np.ndarray:
    """(atoms,) standard atomic weights in Da of element symbols (gemmi's table)."""
    unique, inverse = np.unique(np.asarray(elements), return_inverse=True)
    weights = np.array([gemmi.Element(str(symbol)).weight for symbol in unique], dtype=np.float64)
    return weights[inverse].reshape(-1)


def _residue_kind_masks(model: AtomicModel) -> tuple[np.ndarray, np.ndarray]:
    """(residues,) bool masks: amino acid, nucleotide.

    A residue is an amino acid when gemmi's residue table says so or when it has the
    backbone atoms N, CA and C (force-field names such as HSD, modified residues); a
    nucleotide when the table says so or when it has C1' and C4'.
    """

    def has(name: str) -> np.ndarray:
        present = np.zeros(model.n_residues, dtype=bool)
        present[model.residue_index[model.atom_names == name]] = True
        return present

    names = model.residue_names[model.residue_first_atom]
    amino = has("N") & has("CA") & has("C")
    nucleic = has("C1'") & has("C4'")
    for name in np.unique(names):
        info = gemmi.find_tabulated_residue(str(name))
        if info is not None:
            amino[names == name] |= info.is_amino_acid()
            nucleic[names == name] |= info.is_nucleic_acid()
    return amino, nucleic


def _labels(model: AtomicModel, atoms: np.ndarray) -> np.ndarray:
    return np.array(
        [
            f"{model.chain_ids[a]}:{model.residue_numbers[a]}{model.insertion_codes[a]} "
            f"{model.atom_names[a]}"
            for a in atoms
        ],
        dtype=str,
    )


def select_nodes(model: AtomicModel, kind: str = "ca") -> NetworkNodes:
    """The nodes of ``kind`` ("ca", "centroid", "heavy") of ``model``.

    Raises ``InputError`` when the model holds no atom that can be a node of that kind.
    """
    if kind not in NODE_KINDS:
        raise InputError(f"node set {kind!r}: unknown (expected one of {', '.join(NODE_KINDS)})")
    where = model.source or "model"
    masses = atomic_masses(model.elements)
    heavy = ~np.isin(model.elements, ("H", "D"))
    residue = model.residue_index

    if kind == "ca":
        amino, nucleic = _residue_kind_masks(model)
        is_node = np.zeros(model.n_atoms, dtype=bool)
        is_node |= (model.atom_names == "CA") & (model.elements == "C") & amino[residue]
        is_node |= (model.atom_names == "C4'") & nucleic[residue]
        # One node per residue: keep the first such atom of a residue.
        candidates = np.nonzero(is_node)[0]
        _, first = np.unique(residue[candidates], return_index=True)
        atom_indices = candidates[first]
        if len(atom_indices) == 0:
            raise InputError(
                f"{where}: no Cα (amino acid) or C4' (nucleotide) atoms "
                f"(expected a protein or nucleic acid; use nodes 'heavy' for small molecules)"
            )
        coords = model.coords[atom_indices]
        node_of_residue = np.full(model.n_residues, -1, dtype=np.int64)
        node_of_residue[residue[atom_indices]] = np.arange(len(atom_indices))
        owner = node_of_residue[residue]
        orphans = np.nonzero(owner < 0)[0]
        if len(orphans):
            owner[orphans] = cKDTree(coords).query(model.coords[orphans])[1]
        on_atoms = True
    elif kind == "centroid":
        use = heavy if heavy.any() else np.ones(model.n_atoms, dtype=bool)
        counts = np.bincount(residue[use], minlength=model.n_residues).astype(np.float64)
        # A residue of hydrogens only (unusual) is placed at the centroid of all its atoms.
        empty = counts == 0
        use = use | empty[residue]
        counts = np.bincount(residue[use], minlength=model.n_residues).astype(np.float64)
        coords = (
            np.stack(
                [
                    np.bincount(
                        residue[use], weights=model.coords[use, axis], minlength=model.n_residues
                    )
                    for axis in range(3)
                ],
                axis=1,
            )
            / counts[:, None]
        )
        owner = residue.copy()
        # Representative atom: the Cα, else the residue's atom nearest its centroid.
        used = np.nonzero(use)[0]
        distance2 = np.sum((model.coords[used] - coords[residue[used]]) ** 2, axis=1)
        order = used[np.lexsort((distance2, residue[used]))]
        _, first = np.unique(residue[order], return_index=True)
        atom_indices = np.where(model.ca_index >= 0, model.ca_index, order[first])
        on_atoms = False
    else:
        atom_indices = np.nonzero(heavy)[0]
        if len(atom_indices) == 0:
            raise InputError(f"{where}: no heavy atoms (expected at least one non-hydrogen atom)")
        coords = model.coords[atom_indices]
        owner = np.full(model.n_atoms, -1, dtype=np.int64)
        owner[atom_indices] = np.arange(len(atom_indices))
        hydrogens = np.nonzero(~heavy)[0]
        if len(hydrogens):
            owner[hydrogens] = cKDTree(coords).query(model.coords[hydrogens])[1]
        on_atoms = True

    node_masses = np.bincount(owner, weights=masses, minlength=len(coords))
    return NetworkNodes(
        kind=kind,
        coords=np.ascontiguousarray(coords, dtype=np.float64),
        atom_indices=np.asarray(atom_indices, dtype=np.int64),
        owner=np.asarray(owner, dtype=np.int64),
        on_atoms=on_atoms,
        masses=node_masses,
        labels=_labels(model, atom_indices),
    )

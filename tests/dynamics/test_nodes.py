"""Node sets of the elastic network and the node each atom follows."""

import numpy as np
import pytest

from cryomotion.dynamics.nodes import atomic_masses, select_nodes
from cryomotion.errors import InputError
from cryomotion.structure.io import read_model


def test_ca_nodes_include_force_field_residue_names(adk_open):
    # The AdK files name histidines HSD (CHARMM); they still get their Cα node.
    nodes = select_nodes(adk_open, "ca")
    assert nodes.n_nodes == 214
    assert (adk_open.atom_names[nodes.atom_indices] == "CA").all()
    assert "HSD" in set(adk_open.residue_names[nodes.atom_indices])
    np.testing.assert_array_equal(nodes.coords, adk_open.coords[nodes.atom_indices])
    assert nodes.labels[0] == f"{adk_open.chain_ids[0]}:1 CA"


def test_centroid_nodes_sit_at_residue_centroids(adk_open):
    nodes = select_nodes(adk_open, "centroid")
    assert nodes.n_nodes == adk_open.n_residues
    first = adk_open.residue_index == 0
    np.testing.assert_allclose(nodes.coords[0], adk_open.coords[first].mean(axis=0))
    np.testing.assert_array_equal(nodes.owner, adk_open.residue_index)
    assert not nodes.on_atoms


def test_heavy_nodes_and_hydrogens_follow_their_heavy_atom(adk_open_path):
    model = read_model(adk_open_path, keep_hydrogens=True)
    nodes = select_nodes(model, "heavy")
    heavy = model.elements != "H"
    assert nodes.n_nodes == heavy.sum() < model.n_atoms
    hydrogens = np.nonzero(~heavy)[0]
    followed = nodes.atom_indices[nodes.owner[hydrogens]]
    bond = np.linalg.norm(model.coords[hydrogens] - model.coords[followed], axis=1)
    assert bond.max() < 1.4  # each hydrogen follows the atom it is bonded to (S-H: 1.34 Å)
    assert nodes.masses.sum() == pytest.approx(atomic_masses(model.elements).sum())


def test_ligand_and_water_atoms_follow_the_nearest_node(hiv_protease_path):
    model = read_model(hiv_protease_path, keep_ligands=True, keep_waters=True)
    nodes = select_nodes(model, "ca")
    assert nodes.n_nodes == 198  # two chains of 99 residues
    hetero = np.nonzero(model.is_hetero)[0]
    distance = np.linalg.norm(model.coords[hetero, None] - nodes.coords[None], axis=2)
    np.testing.assert_array_equal(nodes.owner[hetero], distance.argmin(axis=1))


def test_unknown_node_kind_and_empty_node_set_are_errors(adk_open):
    with pytest.raises(InputError, match="unknown"):
        select_nodes(adk_open, "cb")
    no_ca = adk_open.select(adk_open.atom_names != "CA")
    with pytest.raises(InputError, match="no Cα"):
        select_nodes(no_ca, "ca")


def test_atomic_masses():
    np.testing.assert_allclose(
        atomic_masses(np.array(["C", "N", "FE"])), [12.0107, 14.0067, 55.845], rtol=1e-4
    )

from dataclasses import replace

import numpy as np
import pytest

from cryomotion.errors import InputError
from cryomotion.structure.io import (
    check_fits_pdb,
    fits_pdb,
    read_model,
    read_trajectory,
    write_models,
)
from cryomotion.structure.model import AtomicModel


def test_adk_elements_inferred_without_element_column(adk_open_path):
    model = read_model(adk_open_path)
    # 4AKE heavy atoms: 214 residues; no element column in this CHARMM-style file.
    assert model.n_atoms == 1656
    assert model.n_residues == 214
    counts = dict(zip(*np.unique(model.elements, return_counts=True)))
    assert counts == {"C": 1040, "N": 289, "O": 320, "S": 7}
    # CHARMM names like HG1 / CD / NE must not become mercury, cadmium or neon.
    assert set(model.elements) <= {"C", "N", "O", "S"}
    assert np.all(model.ca_index >= 0)
    assert np.all(model.atom_names[model.ca_index] == "CA")


def test_hydrogens_kept_on_request(adk_open_path):
    model = read_model(adk_open_path, keep_hydrogens=True)
    assert model.n_atoms == 3341
    assert (model.elements == "H").sum() == 3341 - 1656


def test_ligands_dropped_by_default_modified_residues_kept(hiv_protease_path):
    model = read_model(hiv_protease_path)
    assert set(model.chain_ids) == {"A", "B"}
    assert "XK2" not in model.residue_names
    assert "CSO" in model.residue_names  # S-hydroxycysteine: part of the polymer
    full = read_model(hiv_protease_path, keep_ligands=True)
    assert (full.residue_names == "XK2").sum() == 46
    assert full.n_atoms == model.n_atoms + 46


def test_waters_dropped_by_default(tmp_path, gramicidin_path):
    water = "HETATM 9999  O   HOH W 500      10.000  10.000  10.000  1.00 10.00           O\n"
    lines = gramicidin_path.read_text().splitlines(keepends=True)
    last_atom = max(i for i, line in enumerate(lines) if line.startswith(("ATOM", "HETATM")))
    text = "".join(lines[: last_atom + 1]) + water + "".join(lines[last_atom + 1 :])
    path = tmp_path / "wet.pdb"
    path.write_text(text)
    assert "HOH" not in read_model(path).residue_names
    assert (read_model(path, keep_waters=True).residue_names == "HOH").sum() == 1


def test_altloc_resolved_to_highest_occupancy(tmp_path):
    lines = [
        "ATOM      1  N   ALA A   1       0.000   0.000   0.000  1.00 10.00           N",
        "ATOM      2  CA AALA A   1       1.000   0.000   0.000  0.30 10.00           C",
        "ATOM      3  CA BALA A   1       2.000   0.000   0.000  0.70 10.00           C",
        "ATOM      4  C   ALA A   1       3.000   0.000   0.000  1.00 10.00           C",
        "ATOM      5  N   GLY A   3       4.000   0.000   0.000  1.00 10.00           N",
        "ATOM      6  CA  GLY A   3       5.000   0.000   0.000  1.00 10.00           C",
        "END",
    ]
    path = tmp_path / "alt.pdb"
    path.write_text("\n".join(lines) + "\n")
    model = read_model(path)
    assert model.n_atoms == 5
    assert model.coords[1, 0] == 2.0  # altloc B, occupancy 0.7
    # The gap between residues 1 and 3 is kept as it is: two residues, numbers 1 and 3.
    assert model.n_residues == 2
    assert model.residue_numbers[model.ca_index].tolist() == [1, 3]


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_multi_model_round_trip(tmp_path, hiv_protease_path, suffix):
    model = read_model(hiv_protease_path)
    rng = np.random.default_rng(0)
    frames = model.coords + rng.normal(0, 1, size=(3, model.n_atoms, 3))
    path = write_models(tmp_path / f"traj{suffix}", model, frames)
    back = read_trajectory(path, model)
    assert back.shape == frames.shape
    np.testing.assert_allclose(back, frames, atol=6e-4)  # PDB/mmCIF keep 3 decimals
    first = read_model(path)
    for name in ("elements", "atom_names", "residue_names", "residue_numbers", "chain_ids"):
        assert np.array_equal(getattr(first, name), getattr(model, name)), name


def test_b_factor_column_written(tmp_path, gramicidin_path):
    model = read_model(gramicidin_path)
    values = np.arange(model.n_atoms) % 7
    back = read_model(write_models(tmp_path / "b.pdb", model, b_factors=values))
    np.testing.assert_allclose(back.b_factors, values)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        read_model(tmp_path / "nope.pdb")


def test_no_protein_atoms(tmp_path):
    path = tmp_path / "water.pdb"
    path.write_text(
        "HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00 10.00           O\nEND\n"
    )
    with pytest.raises(InputError, match=r"water\.pdb.*no protein"):
        read_model(path)


def test_unknown_element(tmp_path):
    path = tmp_path / "odd.pdb"
    path.write_text(
        "ATOM      1  N   ALA A   1       0.000   0.000   0.000  1.00 10.00\n"
        "ATOM      2  QQ  ALA A   1       1.000   0.000   0.000  1.00 10.00\nEND\n"
    )
    with pytest.raises(InputError, match=r"odd\.pdb: atom 'QQ'.*unknown element"):
        read_model(path)


def test_trajectory_with_other_atoms_is_refused(tmp_path, adk_open_path, gramicidin_path):
    reference = read_model(adk_open_path)
    with pytest.raises(InputError, match="atoms"):
        read_trajectory(gramicidin_path, reference)


def _with_coordinate(text: str, line_index: int, value: str) -> str:
    """A PDB text with the x coordinate of its ``line_index``-th ATOM record replaced."""
    lines = text.splitlines(keepends=True)
    atoms = [i for i, line in enumerate(lines) if line.startswith("ATOM")]
    i = atoms[line_index]
    lines[i] = lines[i][:30] + f"{value:>8}" + lines[i][38:]
    return "".join(lines)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_coordinates_are_a_one_line_error(adk_open_path, tmp_path, value):
    path = tmp_path / "bad.pdb"
    path.write_text(_with_coordinate(adk_open_path.read_text(), 0, value))
    with pytest.raises(InputError) as err:
        read_model(path)
    message = str(err.value)
    assert str(path) in message and "not finite" in message and "serial 1" in message
    assert "\n" not in message


def test_non_finite_coordinates_in_mmcif(adk_open_path, tmp_path):
    model = read_model(adk_open_path)
    cif = write_models(tmp_path / "good.cif", model)
    text = cif.read_text()
    x = f"{model.coords[0, 0]:.3f}"
    assert x in text
    bad = tmp_path / "bad.cif"
    bad.write_text(text.replace(f" {x} ", " nan ", 1))
    with pytest.raises(InputError, match=r"bad\.cif: atom 'N' .*not finite"):
        read_model(bad)


def test_no_macromolecule_is_a_one_line_error(tmp_path):
    water = tmp_path / "water.pdb"
    water.write_text(
        "HETATM    1  O   HOH A   1       1.000   2.000   3.000  1.00  0.00           O\nEND\n"
    )
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    for path in (water, empty):
        with pytest.raises(InputError, match="no protein or nucleic-acid atoms|no models"):
            read_model(path)


def test_pdb_limits_refused_for_a_named_output(adk_open_path, tmp_path):
    model = read_model(adk_open_path)
    assert fits_pdb(model)
    check_fits_pdb(model, tmp_path / "ok.pdb")
    n = 100_000
    big = AtomicModel(
        coords=np.zeros((n, 3)), elements=np.full(n, "C"), atom_names=np.full(n, "CA"),
        residue_names=np.full(n, "ALA"), residue_numbers=np.arange(n) % 9999 + 1,
        insertion_codes=np.full(n, ""), chain_ids=np.full(n, "A"), b_factors=np.zeros(n),
        occupancies=np.ones(n), is_hetero=np.zeros(n, dtype=bool),
    )  # fmt: skip
    assert not fits_pdb(big)
    with pytest.raises(InputError, match=r"100000 atoms do not fit the PDB format.*big\.cif"):
        check_fits_pdb(big, tmp_path / "big.pdb")
    check_fits_pdb(big, tmp_path / "big.cif")  # mmCIF holds any number
    renumbered = replace(model, residue_numbers=model.residue_numbers + 10_000)
    with pytest.raises(InputError, match="residue numbers"):
        check_fits_pdb(renumbered, tmp_path / "x.pdb")

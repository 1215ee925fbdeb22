"""Reading and writing atomic models (PDB, mmCIF; single and multi-model) with gemmi."""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.structure.elements import infer_element
from cryomotion.structure.model import AtomicModel

WATER_NAMES = {"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL"}
PDB_MAX_ATOMS = 99_999  # the PDB format's 5-digit atom serials
PDB_RESIDUE_NUMBERS = (-999, 9999)  # its 4-column residue numbers


def _pdb_has_element_column(path: Path) -> bool:
    """True unless a PDB file has an ATOM/HETATM record with blank columns 77-78."""
    name = path.name.lower()
    if name.endswith((".cif", ".mmcif", ".cif.gz", ".mmcif.gz")):
        return True
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as handle:
        for line in handle:
            if line.startswith(("ATOM  ", "HETATM")) and not line[76:78].strip():
                return False
    return True


def _is_polymer_residue(residue: gemmi.Residue) -> bool:
    info = gemmi.find_tabulated_residue(residue.name)
    if info is not None and (info.is_amino_acid() or info.is_nucleic_acid()):
        return True
    return residue.entity_type == gemmi.EntityType.Polymer


def read_model(
    path: str | os.PathLike,
    model_index: int = 0,
    keep_hydrogens: bool = False,
    keep_waters: bool = False,
    keep_ligands: bool = False,
) -> AtomicModel:
    """Read one model of a PDB or mmCIF file.

    Alternative locations are resolved per residue to the highest total occupancy;
    hydrogens, waters and ligands (non-polymer HETATM residues) are dropped unless asked
    for. Elements missing from the file (no element column) are inferred from atom names.
    Raises ``InputError`` for a missing file, a file with no protein or nucleic-acid atoms,
    or an atom whose element cannot be determined.
    """
    path = Path(path)
    structure, infer_all = _read_structure(path)
    return _extract_model(
        structure, path, model_index, infer_all, keep_hydrogens, keep_waters, keep_ligands
    )


def _read_structure(path: Path) -> tuple[gemmi.Structure, bool]:
    """The parsed file and whether elements must be inferred from atom names."""
    if not path.is_file():
        raise InputError(f"{path}: no such model file (expected a PDB or mmCIF file)")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as err:
        raise InputError(f"{path}: not a readable PDB/mmCIF file ({err})") from None
    if len(structure) == 0:
        raise InputError(f"{path}: contains no models (expected ATOM records)")
    structure.setup_entities()
    return structure, not _pdb_has_element_column(path)


def _extract_model(
    structure: gemmi.Structure,
    path: Path,
    model_index: int,
    infer_all: bool,
    keep_hydrogens: bool,
    keep_waters: bool,
    keep_ligands: bool,
) -> AtomicModel:
    if not 0 <= model_index < len(structure):
        raise InputError(
            f"{path}: model index {model_index} out of range (file has {len(structure)} models)"
        )
    model = structure[model_index]

    rows: list[tuple] = []
    n_polymer = 0
    for chain in model:
        for residue in chain:
            polymer = _is_polymer_residue(residue)
            water = residue.name.upper() in WATER_NAMES or residue.is_water()
            if water and not keep_waters:
                continue
            if not polymer and not water and not keep_ligands:
                continue
            best_altloc = _best_altloc(residue)
            for atom in residue:
                if atom.altloc not in ("\0", " ", best_altloc):
                    continue
                element = atom.element.name.upper() if not infer_all else ""
                if element in ("", "X"):
                    element = infer_element(atom.name, residue.name, residue.het_flag == "H")
                if not element or gemmi.Element(element).atomic_number == 0:
                    raise InputError(
                        f"{path}: atom {atom.name!r} of residue {residue.name} {residue.seqid} "
                        f"(chain {chain.name!r}, serial {atom.serial}): unknown element "
                        f"(expected an element column or a standard atom name)"
                    )
                if element in ("H", "D") and not keep_hydrogens:
                    continue
                if not (
                    math.isfinite(atom.pos.x)
                    and math.isfinite(atom.pos.y)
                    and math.isfinite(atom.pos.z)
                ):
                    raise InputError(
                        f"{path}: atom {atom.name!r} of residue {residue.name} {residue.seqid} "
                        f"(chain {chain.name!r}, serial {atom.serial}): coordinates "
                        f"({atom.pos.x}, {atom.pos.y}, {atom.pos.z}) are not finite numbers"
                    )
                n_polymer += polymer
                rows.append(
                    (
                        atom.pos.x,
                        atom.pos.y,
                        atom.pos.z,
                        element,
                        atom.name,
                        residue.name,
                        residue.seqid.num,
                        residue.seqid.icode.strip(),
                        chain.name,
                        atom.b_iso,
                        atom.occ,
                        residue.het_flag == "H",
                    )
                )
    if n_polymer == 0:
        raise InputError(
            f"{path}: model {model_index} contains no protein or nucleic-acid atoms "
            f"(expected ATOM records of a macromolecule)"
        )
    columns = list(zip(*rows))
    return AtomicModel(
        coords=np.array(columns[0:3], dtype=np.float64).T,
        elements=np.array(columns[3]),
        atom_names=np.array(columns[4]),
        residue_names=np.array(columns[5]),
        residue_numbers=np.array(columns[6]),
        insertion_codes=np.array(columns[7]),
        chain_ids=np.array(columns[8]),
        b_factors=np.array(columns[9]),
        occupancies=np.array(columns[10]),
        is_hetero=np.array(columns[11]),
        source=str(path),
    )


def _best_altloc(residue: gemmi.Residue) -> str:
    """The alternative location with the highest summed occupancy in a residue, or ""."""
    totals: dict[str, float] = {}
    for atom in residue:
        if atom.altloc not in ("\0", " "):
            totals[atom.altloc] = totals.get(atom.altloc, 0.0) + atom.occ
    return max(totals, key=lambda k: (totals[k], -ord(k))) if totals else ""


def read_trajectory(
    path: str | os.PathLike, reference: AtomicModel | None = None, **read_options
) -> np.ndarray:
    """All models of a multi-model file as (models, atoms, 3) coordinates in Å.

    Each model is read like ``read_model`` (``read_options`` are passed on); with
    ``reference`` given, every model must hold the same atoms (names, residues, chains)
    in the same order.
    """
    path = Path(path)
    structure, infer_all = _read_structure(path)
    options = {"keep_hydrogens": False, "keep_waters": False, "keep_ligands": False}
    options.update(read_options)
    frames = []
    for index in range(len(structure)):
        model = _extract_model(structure, path, index, infer_all, **options)
        if reference is not None:
            _check_same_atoms(reference, model, f"{path} model {index + 1}")
        frames.append(model.coords)
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise InputError(f"{path}: models hold different numbers of atoms {sorted(shapes)}")
    return np.stack(frames)


def _check_same_atoms(reference: AtomicModel, other: AtomicModel, where: str) -> None:
    if other.n_atoms != reference.n_atoms:
        raise InputError(
            f"{where}: has {other.n_atoms} atoms, the reference model has {reference.n_atoms} "
            f"(expected the same atoms in the same order)"
        )
    same = (other.atom_names == reference.atom_names) & (
        other.residue_numbers == reference.residue_numbers
    )
    if not same.all():
        i = int(np.argmin(same))
        raise InputError(
            f"{where}: atom {i + 1} is {other.atom_names[i]} {other.residue_numbers[i]}, the "
            f"reference has {reference.atom_names[i]} {reference.residue_numbers[i]} "
            f"(expected the same atoms in the same order)"
        )


def check_same_atoms(reference: AtomicModel, other: AtomicModel, where: str) -> None:
    """Raise ``InputError`` unless ``other`` holds the same atoms as ``reference``, in order."""
    _check_same_atoms(reference, other, where)


def _to_gemmi_structure(model: AtomicModel, coords: np.ndarray) -> gemmi.Structure:
    structure = gemmi.Structure()
    structure.name = "cryomotion"
    template = gemmi.Model("1")
    chain = None
    residue = None
    previous_residue = -1
    for i in range(model.n_atoms):
        chain_id = model.chain_ids[i]
        if chain is None or chain.name != chain_id or model.residue_index[i] != previous_residue:
            if chain is None or chain.name != chain_id:
                if chain is not None:
                    chain.add_residue(residue)
                    template.add_chain(chain)
                    residue = None
                chain = gemmi.Chain(chain_id)
            if residue is not None:
                chain.add_residue(residue)
            residue = gemmi.Residue()
            residue.name = model.residue_names[i]
            residue.seqid = gemmi.SeqId(
                int(model.residue_numbers[i]), model.insertion_codes[i] or " "
            )
            residue.het_flag = "H" if model.is_hetero[i] else "A"
            previous_residue = model.residue_index[i]
        atom = gemmi.Atom()
        atom.name = model.atom_names[i]
        atom.element = gemmi.Element(model.elements[i])
        atom.b_iso = float(model.b_factors[i])
        atom.occ = float(model.occupancies[i])
        atom.pos = gemmi.Position(0.0, 0.0, 0.0)
        residue.add_atom(atom)
    if chain is not None:
        chain.add_residue(residue)
        template.add_chain(chain)
    for index, frame in enumerate(coords):
        gemmi_model = template.clone()
        gemmi_model.num = index + 1
        positions = iter(frame)
        for gchain in gemmi_model:
            for gresidue in gchain:
                for gatom in gresidue:
                    x, y, z = next(positions)
                    gatom.pos = gemmi.Position(float(x), float(y), float(z))
        structure.add_model(gemmi_model)
    structure.setup_entities()
    return structure


def fits_pdb(model: AtomicModel) -> bool:
    """True if the model's atom serials and residue numbers fit PDB's decimal columns."""
    low, high = PDB_RESIDUE_NUMBERS
    numbers = np.asarray(model.residue_numbers)
    in_range = not numbers.size or (numbers.min() >= low and numbers.max() <= high)
    return model.n_atoms <= PDB_MAX_ATOMS and bool(in_range)


def check_fits_pdb(model: AtomicModel, path: str | os.PathLike) -> None:
    """``InputError`` if a PDB file ``path`` cannot hold ``model`` in decimal columns.

    For an output the user named: beyond them ``write_models`` writes hybrid-36 serials
    and residue numbers (gemmi's, which gemmi reads back), which many programs do not read.
    """
    path = Path(path)
    if path.suffix.lower() not in (".pdb", ".ent"):
        return
    low, high = PDB_RESIDUE_NUMBERS
    if model.n_atoms > PDB_MAX_ATOMS:
        raise InputError(
            f"{path}: {model.n_atoms} atoms do not fit the PDB format (at most "
            f"{PDB_MAX_ATOMS:,}); write mmCIF instead ({path.with_suffix('.cif').name})"
        )
    numbers = np.asarray(model.residue_numbers)
    if numbers.size and (numbers.min() < low or numbers.max() > high):
        raise InputError(
            f"{path}: residue numbers {numbers.min()}..{numbers.max()} do not fit the PDB "
            f"format ({low}..{high}); write mmCIF instead ({path.with_suffix('.cif').name})"
        )


def write_models(
    path: str | os.PathLike,
    model: AtomicModel,
    coords: np.ndarray | Sequence[np.ndarray] | None = None,
    b_factors: np.ndarray | None = None,
) -> Path:
    """Write one model, or several conformations of it, to a PDB or mmCIF file.

    ``coords``: (atoms, 3) or (models, atoms, 3) in Å; the model's own coordinates if
    omitted. The format follows the suffix (.pdb/.ent or .cif/.mmcif). ``b_factors``
    (atoms,) replaces the B-factor column (used to colour by a per-atom value). The file is
    written atomically. Beyond PDB's decimal columns (more than 99,999 atoms, residue
    numbers outside -999..9999) gemmi writes hybrid-36 (``check_fits_pdb`` refuses that
    for a file the user named).
    """
    path = Path(path)
    frames = np.asarray(model.coords if coords is None else coords, dtype=np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.shape[1:] != (model.n_atoms, 3):
        raise ValueError(f"coords shape {frames.shape} does not match {model.n_atoms} atoms")
    if b_factors is not None:
        model = replace(model, b_factors=np.asarray(b_factors, dtype=np.float64))
    structure = _to_gemmi_structure(model, frames)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in (".cif", ".mmcif"):
            structure.make_mmcif_document().write_file(str(tmp))
        elif suffix in (".pdb", ".ent"):
            options = gemmi.PdbWriteOptions()
            structure.write_pdb(str(tmp), options)
        else:
            raise InputError(f"{path}: unknown model format (expected .pdb or .cif)")
    return path

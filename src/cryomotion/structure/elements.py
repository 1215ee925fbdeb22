"""Element symbols inferred from PDB atom names, for files without an element column."""

from __future__ import annotations

import gemmi

# Two-letter elements that appear as ions or cofactors in macromolecular files. In a
# standard residue a name such as "CA" or "HG1" is carbon or hydrogen; only in a HETATM
# residue whose name is the element itself ("CA", "ZN", "MG") is it the ion.
_ION_ELEMENTS = {
    "NA",
    "MG",
    "AL",
    "CL",
    "CA",
    "MN",
    "FE",
    "CO",
    "NI",
    "CU",
    "ZN",
    "SE",
    "BR",
    "CD",
    "SR",
    "RB",
    "CS",
    "BA",
    "HG",
    "PT",
    "AU",
    "PB",
    "LI",
    "TB",
    "YB",
    "GD",
    "SM",
    "EU",
}


def infer_element(atom_name: str, residue_name: str = "", is_hetero: bool = False) -> str:
    """Element symbol (upper case) from a PDB atom name, or "" if it cannot be inferred.

    Follows the PDB rule that a one-letter element sits in column 14 ("CA" is Cα) and uses
    the residue name for ions ("CA" in residue "CA" is calcium). Leading digits of
    hydrogen names ("1HB", "2HG1") are skipped.
    """
    name = atom_name.strip().upper()
    residue = residue_name.strip().upper()
    if not name:
        return ""
    if is_hetero and name == residue and name in _ION_ELEMENTS:
        return name
    letters = name.lstrip("0123456789")
    if not letters:
        return ""
    first = letters[0]
    if first in "CNOSHPD":
        return "H" if first == "D" else first
    if len(letters) >= 2 and letters[:2] in _ION_ELEMENTS:
        return letters[:2]
    element = gemmi.Element(first)
    return first if element.atomic_number > 0 else ""

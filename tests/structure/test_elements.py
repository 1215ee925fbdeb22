import pytest

from cryomotion.structure.elements import infer_element


@pytest.mark.parametrize(
    "atom, residue, hetero, expected",
    [
        ("CA", "ALA", False, "C"),
        ("HG1", "THR", False, "H"),
        ("CD", "GLU", False, "C"),
        ("NE", "ARG", False, "N"),
        ("OG1", "THR", False, "O"),
        ("SD", "MET", False, "S"),
        ("1HB", "ALA", False, "H"),
        ("CA", "CA", True, "CA"),
        ("ZN", "ZN", True, "ZN"),
        ("MG", "MG", True, "MG"),
        ("QQ", "ALA", False, ""),
    ],
)
def test_infer_element(atom, residue, hetero, expected):
    assert infer_element(atom, residue, hetero) == expected

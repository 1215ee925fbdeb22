import numpy as np
import pytest

from cryomotion.errors import InputError
from cryomotion.structure.form_factors import electron_form_factor, scattering_table


def test_carbon_matches_international_tables():
    # ITC Vol. C Table 4.3.2.2 (Peng et al. 1996), carbon, elastic electron scattering.
    a, b = electron_form_factor("C")
    np.testing.assert_allclose(a, [0.0893, 0.2563, 0.7570, 1.0487, 0.3575], atol=1e-4)
    np.testing.assert_allclose(b, [0.2465, 1.7100, 6.4094, 18.6113, 50.2523], atol=1e-3)


def test_heavier_atoms_scatter_more():
    totals = [electron_form_factor(e)[0].sum() for e in ("H", "C", "N", "O", "S", "FE")]
    assert np.all(np.diff(totals[:2]) > 0) and totals[4] > totals[3] and totals[5] > totals[4]


def test_table_groups_atoms_by_element():
    types, a, b, index = scattering_table(["N", "C", "C", "S", "N"])
    assert types == ["C", "N", "S"]
    assert a.shape == b.shape == (3, 5)
    assert index.tolist() == [1, 0, 0, 2, 1]


def test_unknown_element():
    with pytest.raises(InputError, match="unknown element"):
        electron_form_factor("Qq")

"""Electron scattering factors: 5-Gaussian fits per element, from gemmi.

The coefficients are those of International Tables for Crystallography Vol. C,
Table 4.3.2.2 (Peng et al. 1996), as tabulated by gemmi (``Element.c4322``):

    f_e(s) = sum_i a_i exp(-b_i s^2),  s = sin(theta)/lambda = |q|/2,

with ``a_i`` in Å and ``b_i`` in Å², q the spatial frequency in 1/Å. In real space each
term is a 3-D Gaussian whose integral is ``a_i``, so an atom's potential integrates to
``f_e(0) = sum_i a_i`` (Å).
"""

from __future__ import annotations

from collections.abc import Sequence

import gemmi
import numpy as np

from cryomotion.errors import InputError


def electron_form_factor(element: str) -> tuple[np.ndarray, np.ndarray]:
    """(a (5,) in Å, b (5,) in Å²) of the 5-Gaussian electron scattering factor of ``element``."""
    gemmi_element = gemmi.Element(element)
    if gemmi_element.atomic_number == 0:
        raise InputError(f"unknown element {element!r} (expected a chemical element symbol)")
    coefs = np.asarray(gemmi_element.c4322.get_coefs(), dtype=np.float64)
    if coefs.shape != (10,) or not np.any(coefs[:5]):
        raise InputError(f"element {element!r}: no tabulated electron scattering factor")
    return coefs[:5], coefs[5:]


def scattering_table(
    elements: Sequence[str],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Group atoms by element for the renderer.

    Returns ``(types, a, b, type_index)``: the distinct element symbols (T), the
    coefficients ``a`` (T, 5) in Å and ``b`` (T, 5) in Å², and (atoms,) the index of each
    atom's type.
    """
    types, type_index = np.unique(np.asarray(elements, dtype=str), return_inverse=True)
    coefficients = [electron_form_factor(t) for t in types]
    a = np.stack([c[0] for c in coefficients])
    b = np.stack([c[1] for c in coefficients])
    return types.tolist(), a, b, type_index.astype(np.int64)

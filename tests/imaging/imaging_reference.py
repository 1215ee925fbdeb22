"""Helpers for the imaging tests: devices, small models, an independent reference image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryomotion.structure.form_factors import electron_form_factor
from cryomotion.structure.model import AtomicModel

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


def make_model(coords, elements, residue_numbers=None, atom_names=None) -> AtomicModel:
    """An AtomicModel from coordinates (atoms, 3) Å and element symbols."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    n = len(coords)
    return AtomicModel(
        coords=coords,
        elements=np.asarray(elements),
        atom_names=np.asarray(atom_names if atom_names is not None else ["X"] * n),
        residue_names=np.full(n, "GLY"),
        residue_numbers=np.asarray(residue_numbers if residue_numbers is not None else range(n)),
        insertion_codes=np.full(n, ""),
        chain_ids=np.full(n, "A"),
        b_factors=np.zeros(n),
        occupancies=np.ones(n),
        is_hetero=np.zeros(n, dtype=bool),
    )


def reference_image(xy, elements, box, pixel_size, weights=None):
    """Exact band-limited image of atoms at in-plane positions xy (atoms, 2) Å from the image
    origin, float64 numpy, written from the definition: the analytic Fourier transform
    Σ_a f_a(|q|/2) exp(-2πi q·r_a) on the frequencies k/(box·pixel_size), |k_x|, |k_y| ≤ box/2
    (weight 1/2 on each ±box/2 term of an even box), summed back with explicit exponentials."""
    half = box // 2
    k = np.arange(-half, half + 1)
    weight = np.ones(len(k))
    if box % 2 == 0:
        weight[[0, -1]] = 0.5
    q = k / (box * pixel_size)
    q2 = q[:, None] ** 2 + q[None, :] ** 2
    spectrum = np.zeros((len(k), len(k)), dtype=complex)
    weights = np.ones(len(xy)) if weights is None else weights
    for (x, y), element, w in zip(np.asarray(xy, float), elements, weights):
        if isinstance(element, str):
            a, b = electron_form_factor(element)
        else:
            a, b = element
        form = (np.asarray(a)[:, None, None] * np.exp(-np.asarray(b)[:, None, None] * q2 / 4)).sum(
            0
        )
        spectrum += w * form * np.exp(-2j * np.pi * (q[:, None] * y + q[None, :] * x))
    spectrum *= weight[:, None] * weight[None, :]
    pixels = (np.arange(box) - half) * pixel_size
    inverse = np.exp(2j * np.pi * np.outer(pixels, q))
    return (inverse @ spectrum @ inverse.T).real / (box * pixel_size) ** 2

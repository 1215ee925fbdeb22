"""The box checks: the visible radius is the image's half diagonal; references outside it
are refused with the model's file named."""

import math

import numpy as np
import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.train.sanity import (
    check_reference_in_box,
    outside_fraction,
    particles_outside,
    visible_radius,
)


def test_visible_radius_is_the_half_diagonal_of_the_image():
    assert visible_radius(64, 1.5) == pytest.approx(math.sqrt(2) * 32 * 1.5)


def test_outside_fraction_counts_atoms_beyond_the_radius():
    center = torch.zeros(3)
    coords = torch.tensor([[[0.0, 0, 0], [5, 0, 0], [0, 11, 0], [0, 0, -20]]])
    assert float(outside_fraction(coords, center, 10.0)[0]) == 0.5
    assert particles_outside(torch.tensor([0.0, 0.05, 0.5, 1.0])) == 0.5


def test_reference_in_the_box_passes_and_one_far_away_is_refused():
    rng = np.random.default_rng(0)
    coords = rng.normal(48.0, 8.0, (500, 3))
    center = np.full(3, 48.0)
    check_reference_in_box(coords, center, 64, 1.5, "model.pdb")
    with pytest.raises(InputError, match="model.pdb") as info:
        check_reference_in_box(coords + 1000.0, center, 64, 1.5, "model.pdb")
    message = str(info.value)
    assert "outside the particles' box" in message and "--rotation-center" in message
    assert "+1000" in message

"""Checks that a model still sits in the particles' box: at the start of a run (the reference
model) and after every epoch (the deformed models of the test particles).

An atom farther from the rotation centre than the half diagonal of the image, √2·(D/2)·pixel
size, projects outside the image in every orientation: it is invisible to the data. A
reference model with many such atoms is in the wrong frame; a run whose models have them
has diverged (it can lower an L2 loss by rendering nothing when the scale is wrong).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cryomotion.errors import InputError

# A model "leaves the box" when more than this fraction of its atoms are invisible.
OUTSIDE_ATOMS = 0.1
# A run stops when more than this fraction of its test particles' models left the box.
OUTSIDE_PARTICLES = 0.5


def visible_radius(box: int, pixel_size: float) -> float:
    """Å: beyond this distance from the rotation centre an atom projects outside the image."""
    return math.sqrt(2.0) * 0.5 * box * pixel_size


def outside_fraction(coords: torch.Tensor, center: torch.Tensor, radius: float) -> torch.Tensor:
    """Fraction of each model's atoms farther than ``radius`` Å from ``center`` (3,) Å:
    coords (..., atoms, 3) Å -> (...)."""
    distance = (coords - center.to(coords)).norm(dim=-1)
    return (distance > radius).float().mean(dim=-1)


def check_reference_in_box(
    coords: np.ndarray, center: np.ndarray, box: int, pixel_size: float, source: str
) -> None:
    """``InputError`` naming ``source`` if the reference model's atoms (atoms, 3) Å are
    mostly outside a box of ``box`` px at ``pixel_size`` Å/px rotating about ``center``."""
    radius = visible_radius(box, pixel_size)
    coords_t = torch.tensor(np.asarray(coords, dtype=np.float64))
    center_t = torch.as_tensor(np.asarray(center, dtype=np.float64))
    fraction = float(outside_fraction(coords_t, center_t, radius))
    if fraction > OUTSIDE_ATOMS:
        offset = (coords_t.mean(dim=0) - center_t).tolist()
        raise InputError(
            f"{source}: {100 * fraction:.0f} % of the model's atoms lie outside the particles' "
            f"box ({box} px × {pixel_size:.4g} Å, rotating about "
            f"({', '.join(f'{c:.1f}' for c in center_t.tolist())}) Å; the model's centroid is "
            f"({', '.join(f'{c:+.1f}' for c in offset)}) Å from it): expected a model in the "
            "consensus map's frame (or pass --rotation-center centroid)"
        )


def particles_outside(models_outside: torch.Tensor) -> float:
    """Fraction of particles whose models left the box, from ``outside_fraction`` (N,)."""
    if models_outside.numel() == 0:
        return 0.0
    return float((models_outside > OUTSIDE_ATOMS).float().mean())

"""The train/test split of the particles (seed 000: 90 % / 10 %)."""

from __future__ import annotations

import numpy as np

from cryomotion.errors import InputError


def split_particles(
    n_particles: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted particle indices (train, test): a seeded random ``test_fraction`` held out."""
    if not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test fraction {test_fraction}: expected a value in [0, 1)")
    n_test = int(round(n_particles * test_fraction))
    order = np.random.default_rng(seed).permutation(n_particles)
    return np.sort(order[n_test:]), np.sort(order[:n_test])

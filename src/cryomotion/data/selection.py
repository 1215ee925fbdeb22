"""Particle selections given by users: index files and range lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomotion.errors import InputError


def parse_indices(spec: str | None, n_particles: int) -> np.ndarray:
    """0-based particle indices from ``spec``; all particles when ``spec`` is None.

    ``spec`` is a .npy file, a text file of integers (whitespace or comma separated), or
    ranges such as ``0-99,120``. Every index must lie in [0, n_particles).
    """
    if spec is None:
        return np.arange(n_particles)
    path = Path(spec)
    try:
        if path.suffix == ".npy" and path.is_file():
            values = np.load(path, allow_pickle=False)
        elif path.is_file():
            values = np.array(path.read_text().replace(",", " ").split(), dtype=np.int64)
        else:
            values = []
            for part in spec.split(","):
                part = part.strip()
                if "-" in part.lstrip("-"):
                    start, stop = part.split("-", 1)
                    values.extend(range(int(start), int(stop) + 1))
                elif part:
                    values.append(int(part))
    except ValueError:
        raise InputError(
            f"indices {spec!r}: expected a .npy or text file of integers, or ranges like 0-99,120"
        ) from None
    indices = np.asarray(values).astype(np.int64).ravel()
    bad = (indices < 0) | (indices >= n_particles)
    if bad.any():
        raise InputError(
            f"indices {spec!r}: index {int(indices[bad][0])} is outside the {n_particles} "
            f"particles (expected 0-based indices below {n_particles})"
        )
    return indices

"""Conformational ensembles for simulation: morphs and distributions over frames."""

from __future__ import annotations

import numpy as np

from cryomotion.errors import InputError

DISTRIBUTIONS = ("uniform", "continuous", "discontinuous")

# Frame populations of the seed 000 datasets (after Zhong et al. 2019): three Gaussians
# along the trajectory coordinate t in [0, 1], overlapping ("continuous") or separated by
# more than 4 sigma ("discontinuous").
_GAUSSIAN_CENTERS = (0.2, 0.5, 0.8)
_CONTINUOUS_SIGMA = 0.1
_DISCONTINUOUS_CENTERS = (0.1, 0.5, 0.9)
_DISCONTINUOUS_SIGMA = 0.04


def morph(start: np.ndarray, end: np.ndarray, n_frames: int) -> np.ndarray:
    """Linear interpolation from ``start`` to ``end`` (atoms, 3) in ``n_frames`` (>= 2) frames.

    Returns (frames, atoms, 3) in Å; frame 0 is ``start`` and the last is ``end``.
    """
    if n_frames < 2:
        raise InputError(f"--frames {n_frames}: a morph needs at least 2 frames")
    t = np.linspace(0.0, 1.0, n_frames)[:, None, None]
    return (1.0 - t) * np.asarray(start, dtype=np.float64) + t * np.asarray(end, dtype=np.float64)


def frame_weights(distribution: str, n_frames: int, weights=None) -> np.ndarray:
    """Probability of each frame (frames,), summing to 1.

    ``distribution`` is one of ``uniform``, ``continuous`` (three overlapping Gaussians),
    ``discontinuous`` (three separated Gaussians) or ``weights`` (the given non-negative
    ``weights``, one per frame).
    """
    t = np.linspace(0.0, 1.0, n_frames)
    if distribution == "uniform":
        p = np.ones(n_frames)
    elif distribution == "continuous":
        p = sum(np.exp(-0.5 * ((t - c) / _CONTINUOUS_SIGMA) ** 2) for c in _GAUSSIAN_CENTERS)
    elif distribution == "discontinuous":
        p = sum(
            np.exp(-0.5 * ((t - c) / _DISCONTINUOUS_SIGMA) ** 2) for c in _DISCONTINUOUS_CENTERS
        )
    elif distribution == "weights":
        p = np.asarray(weights, dtype=np.float64).ravel()
        if p.shape != (n_frames,):
            raise InputError(
                f"--weights: {p.size} values for {n_frames} frames (expected one weight per frame)"
            )
        if np.any(~np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise InputError("--weights: expected finite non-negative weights with a positive sum")
    else:
        raise InputError(
            f"--distribution {distribution!r}: expected one of {', '.join(DISTRIBUTIONS)}"
            " or a weights file"
        )
    return p / p.sum()


def uniform_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotation matrices drawn uniformly on SO(3) (normalised Gaussian quaternions)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def lognormal_defocus(n: int, mean: float, std: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) defocus values (Å) from a log-normal with the given mean and standard deviation (Å)."""
    sigma2 = np.log1p((std / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), size=n)

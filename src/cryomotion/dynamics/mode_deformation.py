"""Deformation along normal modes as a batched torch operation: X(z) = X0 + Σ_l z_l U_l."""

from __future__ import annotations

import torch


def deform_along_modes(
    coords: torch.Tensor, vectors: torch.Tensor, amplitudes: torch.Tensor
) -> torch.Tensor:
    """Coordinates of the reference moved along the modes, for a batch of amplitudes.

    Parameters
    ----------
    coords : (atoms, 3) Å, the reference coordinates X0.
    vectors : (d, atoms, 3) the mode basis U (d may be 0).
    amplitudes : (..., d) amplitudes z, in Å when U is orthonormal (|z| = norm of the
        displacement summed over atoms).

    Returns
    -------
    (..., atoms, 3) Å, on the device and in the dtype of ``coords`` (``vectors`` and
    ``amplitudes`` are converted to them). Differentiable in all three inputs.
    """
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords of shape {tuple(coords.shape)}, expected (atoms, 3)")
    n_atoms = coords.shape[0]
    if vectors.ndim != 3 or vectors.shape[1:] != (n_atoms, 3):
        raise ValueError(f"vectors of shape {tuple(vectors.shape)}, expected (d, {n_atoms}, 3)")
    if amplitudes.ndim < 1 or amplitudes.shape[-1] != vectors.shape[0]:
        raise ValueError(
            f"amplitudes of shape {tuple(amplitudes.shape)}, expected (..., {vectors.shape[0]})"
        )
    vectors = vectors.to(device=coords.device, dtype=coords.dtype)
    amplitudes = amplitudes.to(device=coords.device, dtype=coords.dtype)
    displacement = torch.tensordot(amplitudes, vectors, dims=1)
    return coords + displacement

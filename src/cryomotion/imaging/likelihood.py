"""Likelihoods of measured particle images given rendered ones: real-space L2 and correlation
(today's training losses) and their Fourier-space forms, which need no inverse FFT per sample.

All functions take leading dimensions that broadcast, images (..., D, D) or half-plane
spectra (..., D, D//2 + 1) in ``torch.fft.rfft2`` layout (``cryomotion.imaging.fourier``),
and return one value per image (...).

Parseval for a real D × D image x with rfft2 half-plane X (columns k_x = 0 … D//2):

    Σ_pixels x² = (1/D²) Σ_{k_y, k_x} w_{k_x} |X[k_y, k_x]|²,

w = 1 for column 0 and, for even D, the Nyquist column D/2 (their own mirror images), w = 2
for the other columns (each stands for itself and its conjugate mirror D − k_x). This holds
for any spectrum that is the rfft2 of a real image — the renderer's spectra, with or without
CTF or band limit, and measured images' rfft2 — which is what ``irfft2`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# Per-image norms below this count as zero (an all-zero rendered image has no direction).
_NORM_FLOOR = 1e-12


def image_l2(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per image: (..., D, D), (..., D, D) -> (...) (seed 000's L2
    loss), computed in float32 as always."""
    return (rendered.float() - measured.float()).square().flatten(-2).mean(dim=-1)


def image_correlation(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """1 − <ŷ, y> / (|ŷ| |y|) per image: (..., D, D), (..., D, D) -> (...) in [0, 2].

    cryoSPHERE's loss (seed 001, eq. 7): blind to the images' scale, which preprocessing
    may have changed. Finite for an all-zero image (loss 1, as for an uncorrelated one).
    Computed in float32 as always.
    """
    rendered, measured = rendered.float().flatten(-2), measured.float().flatten(-2)
    dot = (rendered * measured).sum(dim=-1)
    norms = rendered.square().sum(dim=-1) * measured.square().sum(dim=-1)
    return 1.0 - dot * torch.rsqrt(norms.clamp_min(_NORM_FLOOR))


IMAGE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": image_l2,
    "correlation": image_correlation,
}


def parseval_weights(
    box: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """(box//2 + 1,) the column weights w of the half-plane Parseval sum (module docstring)."""
    half = box // 2 + 1
    weights = torch.full((half,), 2.0, dtype=dtype, device=device)
    weights[0] = 1.0
    if box % 2 == 0:
        weights[-1] = 1.0
    return weights


def _check(spectra: torch.Tensor, box: int) -> None:
    if spectra.dim() < 2 or spectra.shape[-2:] != (box, box // 2 + 1):
        raise ValueError(
            f"spectra {tuple(spectra.shape)}: expected (..., {box}, {box // 2 + 1}) for box {box}"
        )


def _squared_residual(
    spectra: torch.Tensor,
    measured_spectra: torch.Tensor,
    box: int,
    band: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_pixels of the (band-limited) residual², the number of real degrees of freedom
    counted), both (...) / scalar, in the spectra's real dtype."""
    _check(spectra, box)
    _check(measured_spectra, box)
    residual = spectra - measured_spectra
    power = residual.real.square() + residual.imag.square()
    weights = parseval_weights(box, power.dtype, power.device)
    if band is None:
        count = torch.tensor(float(box * box), dtype=power.dtype, device=power.device)
    else:
        band = band.to(power.dtype)
        power = power * band
        count = (band * weights).sum((-2, -1))
    return (power * weights).sum((-2, -1)) / (box * box), count


def fourier_l2(spectra: torch.Tensor, measured_spectra: torch.Tensor, box: int) -> torch.Tensor:
    """``image_l2`` from half-plane spectra (..., box, box//2 + 1): the mean over the box²
    pixels of the squared difference of the images, by Parseval, without an inverse FFT.
    Computed in the spectra's precision (complex64 → float32, complex128 → float64)."""
    total, _ = _squared_residual(spectra, measured_spectra, box, None)
    return total / (box * box)


def gaussian_log_likelihood(
    spectra: torch.Tensor,
    measured_spectra: torch.Tensor,
    noise_sigma: float | torch.Tensor,
    box: int,
    band: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(measured | rendered) per image (...) under white Gaussian noise of std
    ``noise_sigma`` per pixel (real space), from half-plane spectra, constants included:

        −Σ_pixels (y − ŷ)² / (2σ²) − (n/2) log(2πσ²),   n = box².

    This is exactly the real-space density of the measured image (the DFT is unitary up to
    its scale, which Parseval accounts for). ``noise_sigma``: a float or a tensor
    broadcasting against (...).

    band : optional (box, box//2 + 1) mask, 0/1 or bool, in rfft2 layout and symmetric under
        q → −q (e.g. |q| ≤ q_max, ``AtomRenderer.band_mask``): the density of the images'
        band-limited parts instead — the residual projected onto the band, with n the
        number of real degrees of freedom of the band (the number of full-plane frequencies
        in it). Broadcasts against the spectra, so (..., box, K) masks also work.
    """
    total, count = _squared_residual(spectra, measured_spectra, box, band)
    sigma = torch.as_tensor(noise_sigma, dtype=total.dtype, device=total.device)
    variance = sigma.square()
    return -0.5 * total / variance - 0.5 * count * torch.log(2 * math.pi * variance)

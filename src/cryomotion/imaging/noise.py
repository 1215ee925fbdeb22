"""White Gaussian noise at a requested signal-to-noise ratio.

SNR here is the ratio of the clean image's variance over the whole box to the noise
variance, per image: σ²_noise = var(clean image) / SNR (linear, not dB; ``snr_from_db``
converts). The variance includes the empty background around the particle, so the same
SNR means more noise for a smaller particle in the same box.
"""

from __future__ import annotations

import torch

from cryomotion.errors import InputError


def snr_from_db(db):
    """Linear SNR from decibels, 10^(dB/10); float or tensor."""
    return 10 ** (db / 10)


def noise_std(images: torch.Tensor, snr) -> torch.Tensor:
    """(...) noise standard deviation σ = √(var(image) / SNR) for images (..., D, D).

    ``snr`` is a positive float or a tensor broadcastable to the leading dimensions (...).
    """
    if not isinstance(snr, torch.Tensor):
        if not snr > 0:
            raise InputError(
                f"SNR {snr}: expected a positive linear ratio (use snr_from_db for dB)"
            )
        snr = torch.tensor(snr, dtype=images.dtype, device=images.device)
    variance = images.flatten(-2).var(-1, unbiased=False)
    return torch.sqrt(variance / snr.to(images.dtype))


def add_white_noise(
    images: torch.Tensor, snr, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Images (..., D, D) plus white Gaussian noise with σ² = var(image) / SNR per image.

    ``generator`` (on the images' device) makes the noise reproducible.
    """
    sigma = noise_std(images, snr)
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return images + sigma[..., None, None] * noise

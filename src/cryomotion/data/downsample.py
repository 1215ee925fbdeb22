"""Fourier downsampling of images by cropping their centred spectrum.

An image of D × D pixels of size p becomes box × box pixels of size p · D / box holding
the same band-limited signal: the frequencies below the new Nyquist are kept, the rest
dropped. Pixel values keep their meaning as samples of that signal, so a constant image
stays the same constant (the cropped spectrum is rescaled by (box / D)²) and an image
whose content lies below the new Nyquist is sampled exactly at the new pixel centres.
The image origin, pixel (D/2, D/2), maps onto pixel (box/2, box/2).
"""

from __future__ import annotations

import numpy as np


def downsample_image(image: np.ndarray, box: int) -> np.ndarray:
    """Fourier-crop ``image`` (..., D, D) to (..., box, box); ``box`` even and <= D."""
    image = np.asarray(image)
    size = image.shape[-1]
    if image.shape[-2] != size:
        raise ValueError(f"image of shape {image.shape[-2:]}; expected square")
    if box > size or box <= 0 or box % 2:
        raise ValueError(f"box {box} must be even, positive and at most {size}")
    if box == size:
        return image.astype(np.float32, copy=True)
    spectrum = np.fft.rfft2(image.astype(np.float64))
    half = box // 2
    rows = np.r_[0:half, size - half : size]
    cropped = spectrum[..., rows, : half + 1]
    scale = (box / size) ** 2  # irfft2 divides by box², the spectrum sums size² pixels
    return (np.fft.irfft2(cropped, s=(box, box)) * scale).astype(np.float32)

"""Discrete Fourier grids of D × D images, sub-pixel shifts and Fourier cropping.

Conventions
-----------
* Images are (..., D, D) arrays indexed [row = y, col = x]; pixel (i, j) sits at
  x = (j - D//2)·pixel_size, y = (i - D//2)·pixel_size (Å), so the origin is pixel (D//2, D//2).
* Spectra use ``torch.fft`` layouts: ``rfft2`` (..., D, D//2 + 1) or ``fft2`` (..., D, D), with
  frequencies ``fftfreq(D) / pixel_size`` along the rows (q_y) and ``rfftfreq``/``fftfreq``
  along the columns (q_x), in 1/Å. Forward transforms carry exp(-2πi q·r).
* Band limit: for even D the Nyquist bin ±D/2 holds the *average* of the +D/2 and -D/2
  components, i.e. a real cosine. Phase factors exp(-2πi q s) are therefore replaced by
  cos(2π q s) at the Nyquist frequency: shifted images stay real and an integer shift equals
  ``torch.roll``. (Once folded, the ±D/2 components of a sampled image cannot be separated, so
  for an even box a sub-pixel shift of a sampled image differs from the sampled image of the
  shifted object in its Nyquist row and column; for an odd box the two are identical.)
"""

from __future__ import annotations

import math

import torch

from cryomotion.errors import InputError


def fft_frequency_axis(
    box: int,
    pixel_size: float = 1.0,
    rfft: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(n,) DFT frequencies of one image axis in 1/Å: ``fftfreq(box)`` or ``rfftfreq(box)``
    divided by ``pixel_size``."""
    if box < 1 or not pixel_size > 0:
        raise InputError(f"box {box} px, pixel size {pixel_size} Å: expected positive values")
    make = torch.fft.rfftfreq if rfft else torch.fft.fftfreq
    return make(box, d=pixel_size, device=device, dtype=dtype)


def fft_frequencies(
    box: int,
    pixel_size: float = 1.0,
    rfft: bool = True,
    fftshift: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(freq_y, freq_x), each (box, box//2 + 1) for ``rfft`` else (box, box), in 1/Å.

    Rows carry q_y (``fftfreq``), columns q_x (``rfftfreq`` or ``fftfreq``); ``fftshift``
    moves the zero frequency to the centre of every full-length axis.
    """
    freq_y = fft_frequency_axis(box, pixel_size, False, device, dtype)
    freq_x = fft_frequency_axis(box, pixel_size, rfft, device, dtype)
    if fftshift:
        freq_y = torch.fft.fftshift(freq_y)
        if not rfft:
            freq_x = torch.fft.fftshift(freq_x)
    return torch.meshgrid(freq_y, freq_x, indexing="ij")


def _axis_phase(box: int, pixel_size: float, rfft: bool, shift: torch.Tensor) -> torch.Tensor:
    """exp(-2πi q s) along one axis, q = k / (box·pixel_size) for the integer DFT frequencies k
    of ``fftfreq``/``rfftfreq`` layout, s (...,) Å → complex (..., n); a real cosine at the
    Nyquist frequency |k| = box/2 of an even box (see the module conventions)."""
    k = fft_frequency_axis(box, 1.0 / box, rfft, shift.device, shift.dtype).round()
    angle = (-2 * math.pi / (box * pixel_size)) * shift[..., None] * k
    sine = torch.sin(angle)
    if box % 2 == 0:
        sine = sine * (k.abs() != box // 2).to(sine.dtype)
    return torch.complex(torch.cos(angle), sine)


def phase_ramp(
    shifts: torch.Tensor, box: int, pixel_size: float, rfft: bool = True
) -> torch.Tensor:
    """Fourier factor exp(-2πi (q_x s_x + q_y s_y)) that translates an image by +s.

    Parameters
    ----------
    shifts : (..., 2) Å as (x, y).
    Returns complex (..., box, box//2 + 1) (``rfft``) or (..., box, box), unshifted layout,
    cosine at the Nyquist frequency (module conventions).
    """
    real = shifts.dtype if shifts.is_floating_point() else torch.get_default_dtype()
    shifts = shifts.to(real)
    phase_y = _axis_phase(box, pixel_size, False, shifts[..., 1])
    phase_x = _axis_phase(box, pixel_size, rfft, shifts[..., 0])
    return phase_y[..., :, None] * phase_x[..., None, :]


def fourier_shift(images: torch.Tensor, shifts: torch.Tensor, pixel_size: float) -> torch.Tensor:
    """Translate real images by +s (Å) with a Fourier phase: out(r) = image(r - s).

    images (..., D, D), shifts (..., 2) Å as (x, y) → (..., D, D). Periodic (what leaves one
    edge enters at the other); an integer number of pixels equals ``torch.roll``.
    Differentiable with respect to both inputs.
    """
    box = images.shape[-1]
    if images.shape[-2] != box:
        raise ValueError(f"images must be square, got {tuple(images.shape[-2:])}")
    spectrum = torch.fft.rfft2(images)
    ramp = phase_ramp(shifts.to(images.dtype), box, pixel_size, rfft=True)
    return torch.fft.irfft2(spectrum * ramp, s=(box, box))


def _origin_phase(box: int, origin: float, rfft: bool, like: torch.Tensor) -> torch.Tensor:
    """exp(-2πi k·origin/box) on the (box, ·) integer-frequency grid: the factor that moves
    the image origin from pixel 0 to pixel ``origin`` (cosine at Nyquist)."""
    real = like.real.dtype if like.is_complex() else like.dtype
    shift = torch.tensor([origin, origin], dtype=real, device=like.device)
    return phase_ramp(shift, box, 1.0, rfft=rfft)


def fourier_crop(images: torch.Tensor, new_box: int) -> torch.Tensor:
    """Downsample (..., D, D) images to (..., d, d) by keeping the frequencies |k| ≤ d/2.

    The result is the band-limited image of the same object at pixel size p·D/d, with pixel
    values keeping their meaning (projected density per Å², so a constant image keeps its
    value and Σ pixels × pixel_size² is preserved) and the origin moved from pixel D//2 to
    pixel d//2. For even d the new Nyquist row averages the +d/2 and -d/2 components.
    """
    box = images.shape[-1]
    if images.shape[-2] != box:
        raise ValueError(f"images must be square, got {tuple(images.shape[-2:])}")
    if not 1 <= new_box <= box:
        raise InputError(f"fourier_crop to {new_box} px from {box} px: expected 1 ≤ new box ≤ box")
    if new_box == box:
        return images.clone()
    spectrum = torch.fft.rfft2(images)
    # Origin at pixel 0, so the crop keeps the object's position relative to the origin.
    spectrum = spectrum * _origin_phase(box, -(box // 2), True, spectrum)
    k = torch.fft.fftfreq(new_box, d=1.0 / new_box).round().long()
    rows = torch.where(k >= 0, k, box + k).to(images.device)
    cropped = spectrum[..., rows, : new_box // 2 + 1]
    if new_box % 2 == 0:
        # Nyquist row -d/2: mean of the -d/2 and +d/2 components of the larger image.
        half = new_box // 2
        nyquist = 0.5 * (spectrum[..., box - half, : half + 1] + spectrum[..., half, : half + 1])
        cropped = torch.cat(
            [cropped[..., :half, :], nyquist[..., None, :], cropped[..., half + 1 :, :]], dim=-2
        )
    cropped = cropped * _origin_phase(new_box, new_box // 2, True, cropped)
    return torch.fft.irfft2(cropped * (new_box / box) ** 2, s=(new_box, new_box))


def cropped_noise_std(noise_std: float, box: int, new_box: int) -> float:
    """Std of white noise of std ``noise_std`` in (box, box) images after ``fourier_crop``
    to an even ``new_box`` < box: noise_std · (new_box/box) · sqrt(1 − 1/new_box).

    The crop keeps new_box² of the box² Fourier components and rescales them by
    (new_box/box)², which leaves (new_box/box)² of the variance per pixel; the Nyquist row
    (an average of two components) and the Nyquist column (its real part) each carry half
    the variance of the others, new_box of the new_box² components' worth together."""
    if new_box == box:
        return float(noise_std)
    if new_box % 2 or not 2 <= new_box < box:
        raise ValueError(f"crop to {new_box} px from {box} px: expected an even size below it")
    return float(noise_std) * (new_box / box) * math.sqrt(1.0 - 1.0 / new_box)

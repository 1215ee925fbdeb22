"""Contrast transfer function in RELION's sign convention.

RELION (``CTF::initialise`` / ``CTF::getCTF``, ``src/ctf.h``) writes, for a spatial frequency
q = (q_x, q_y) in 1/Å at angle θ from the x axis,

    Δf(θ)  = -(defocus_u + defocus_v)/2 - (defocus_u - defocus_v)/2 · cos(2(θ - defocus_angle))
    γ(q)   = π λ Δf(θ) |q|² + (π/2) C_s λ³ |q|⁴ - phase_shift - atan(w / √(1 - w²))
    CTF(q) = -sin γ(q) · exp(-B |q|² / 4)

with λ the relativistic electron wavelength (Å), C_s the spherical aberration (Å), w the
amplitude contrast (fraction) and B the envelope B-factor (Å²). Defocus values are positive
for underfocus, so Δf < 0 there, and CTF(0) = sin(atan(w/√(1-w²)) + phase_shift), which is
``+w`` without a phase plate: the CTF is positive at low frequency and a projection of
positive density multiplied by it looks like a RELION particle (white particles). Along the
direction θ = defocus_angle the defocus is defocus_u, across it defocus_v.

The angle term is evaluated without atan2 (cos 2(θ-α)·|q|² = (q_x²-q_y²) cos 2α + 2 q_x q_y sin 2α),
so the CTF is smooth in all parameters, q = 0 included.
"""

from __future__ import annotations

import math

import torch
from scipy import constants

from cryomotion.errors import InputError
from cryomotion.imaging.fourier import fft_frequencies

# Order of the per-particle CTF parameters wherever they travel as one array (N, 8):
# defocus_u (Å), defocus_v (Å), defocus_angle (degrees, from the x axis), voltage (kV),
# spherical_aberration (mm), amplitude_contrast (fraction), phase_shift (degrees),
# b_factor (Å²).
CTF_FIELDS = (
    "defocus_u",
    "defocus_v",
    "defocus_angle",
    "voltage",
    "spherical_aberration",
    "amplitude_contrast",
    "phase_shift",
    "b_factor",
)

# λ = h / √(2 m0 e V (1 + e V / (2 m0 c²))), split into two constants so that float32
# tensors never see the tiny intermediate products (2 m0 e V ~ 1e-43 underflows float32).
_WAVELENGTH_NUMERATOR = (
    constants.h / math.sqrt(2 * constants.m_e * constants.e) / constants.angstrom
)  # Å·V^½, about 12.2643
_RELATIVISTIC_PER_VOLT = constants.e / (2 * constants.m_e * constants.c**2)  # 1/V, ~0.978e-6
_MM_TO_ANGSTROM = constants.milli / constants.angstrom


def electron_wavelength(voltage_kv):
    """Relativistic electron wavelength λ in Å for an acceleration voltage in kV.

    λ = h / √(2 m0 e V (1 + e V / (2 m0 c²))), constants from ``scipy.constants``
    (300 kV → 0.019687 Å). ``voltage_kv`` is a float or a tensor of any shape; the result has
    the same type and shape.
    """
    if not isinstance(voltage_kv, torch.Tensor) and not voltage_kv > 0:
        raise InputError(f"voltage {voltage_kv} kV: expected a positive acceleration voltage")
    volts = voltage_kv * constants.kilo
    return _WAVELENGTH_NUMERATOR / (volts * (1 + _RELATIVISTIC_PER_VOLT * volts)) ** 0.5


def compute_ctf(
    ctf_params: torch.Tensor, freq_x: torch.Tensor, freq_y: torch.Tensor
) -> torch.Tensor:
    """RELION's CTF at spatial frequencies (freq_x, freq_y) in 1/Å.

    Parameters
    ----------
    ctf_params : (..., 8) in the order of ``CTF_FIELDS``: defocus_u (Å), defocus_v (Å),
        defocus_angle (degrees from the x axis), voltage (kV), spherical_aberration (mm),
        amplitude_contrast (fraction), phase_shift (degrees), b_factor (Å², envelope
        exp(-B |q|²/4); 0 for none).
    freq_x, freq_y : tensors broadcastable to one grid shape ``G``, 1/Å.

    Returns
    -------
    (..., *G): the batch dimensions of ``ctf_params`` followed by the grid's. Differentiable
    with respect to every parameter.
    """
    if ctf_params.shape[-1] != len(CTF_FIELDS):
        raise ValueError(
            f"ctf_params has {ctf_params.shape[-1]} fields, expected {len(CTF_FIELDS)}"
        )
    grid = torch.broadcast_shapes(freq_x.shape, freq_y.shape)
    params = ctf_params.reshape(ctf_params.shape + (1,) * len(grid))
    (
        defocus_u,
        defocus_v,
        angle_deg,
        voltage_kv,
        cs_mm,
        amplitude_contrast,
        phase_deg,
        b_factor,
    ) = params.unbind(ctf_params.dim() - 1)
    wavelength = electron_wavelength(voltage_kv)
    q2 = freq_x**2 + freq_y**2
    angle = torch.deg2rad(angle_deg)
    # Δf(θ)·|q|², RELION's signs: negative for underfocus.
    astigmatic = (freq_x**2 - freq_y**2) * torch.cos(2 * angle) + 2 * freq_x * freq_y * torch.sin(
        2 * angle
    )
    defocus_q2 = -0.5 * (defocus_u + defocus_v) * q2 - 0.5 * (defocus_u - defocus_v) * astigmatic
    cs = cs_mm * _MM_TO_ANGSTROM
    amplitude_phase = torch.atan2(
        amplitude_contrast, torch.sqrt(torch.clamp(1 - amplitude_contrast**2, min=0))
    )
    gamma = (
        math.pi * wavelength * defocus_q2
        + 0.5 * math.pi * cs * wavelength**3 * q2**2
        - torch.deg2rad(phase_deg)
        - amplitude_phase
    )
    return -torch.sin(gamma) * torch.exp(-0.25 * b_factor * q2)


def ctf_image(
    ctf_params: torch.Tensor,
    box: int,
    pixel_size: float,
    rfft: bool = True,
    fftshift: bool = False,
) -> torch.Tensor:
    """The CTF on the DFT grid of a box × box image with ``pixel_size`` Å/px.

    Parameters
    ----------
    ctf_params : (..., 8), see ``compute_ctf``.
    rfft : half-plane layout (..., box, box//2 + 1) matching ``torch.fft.rfft2`` (rows y,
        columns x); else the full (..., box, box) layout of ``torch.fft.fft2``.
    fftshift : put the zero frequency at the centre (along the rows only in the rfft layout).
    """
    freq_y, freq_x = fft_frequencies(
        box,
        pixel_size,
        rfft=rfft,
        fftshift=fftshift,
        device=ctf_params.device,
        dtype=ctf_params.dtype,
    )
    return compute_ctf(ctf_params, freq_x, freq_y)

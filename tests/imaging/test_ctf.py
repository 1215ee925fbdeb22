import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import (
    CTF_FIELDS,
    compute_ctf,
    ctf_image,
    electron_wavelength,
)


def params(
    defocus_u=15000.0, defocus_v=15000.0, angle=0.0, kv=300.0, cs=2.7, w=0.1, phase=0.0, b=0.0
):
    return torch.tensor([defocus_u, defocus_v, angle, kv, cs, w, phase, b], dtype=torch.float64)


def relion_wavelength(kv):
    local_kv = kv * 1e3
    return 12.2643247 / np.sqrt(local_kv * (1.0 + local_kv * 0.978466e-6))


def relion_ctf(fx, fy, du, dv, azimuth, kv, cs, q0, phase, bfac, lam=None):
    """RELION's CTF::initialise + CTF::getCTF (src/ctf.h), transcribed literally; ``lam``
    replaces RELION's rounded wavelength constants when given."""
    local_cs = cs * 1e7
    defocus_average, defocus_deviation = -(du + dv) * 0.5, -(du - dv) * 0.5
    lam = relion_wavelength(kv) if lam is None else lam
    k1, k2 = np.pi / 2 * 2 * lam, np.pi / 2 * local_cs * lam**3
    k3, k4, k5 = np.arctan(q0 / np.sqrt(1 - q0 * q0)), -bfac / 4.0, np.deg2rad(phase)
    u2 = fx * fx + fy * fy
    deltaf = defocus_average + defocus_deviation * np.cos(
        2 * (np.arctan2(fy, fx) - np.deg2rad(azimuth))
    )
    return -np.sin(k1 * deltaf * u2 + k2 * u2 * u2 - k5 - k3) * np.exp(k4 * u2)


def test_field_order_is_fixed():
    assert CTF_FIELDS == (
        "defocus_u", "defocus_v", "defocus_angle", "voltage",
        "spherical_aberration", "amplitude_contrast", "phase_shift", "b_factor",
    )  # fmt: skip


def test_relativistic_wavelength():
    assert electron_wavelength(300.0) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength(200.0) == pytest.approx(0.025079, abs=2e-6)
    assert electron_wavelength(100.0) == pytest.approx(0.037014, abs=2e-6)
    volts = torch.tensor([100.0, 300.0], dtype=torch.float32)
    assert torch.allclose(electron_wavelength(volts), torch.tensor([0.037014, 0.019687]), atol=2e-6)
    with pytest.raises(InputError):
        electron_wavelength(0.0)


def test_matches_relion_transcription():
    rng = np.random.default_rng(3)
    fx, fy = rng.uniform(-0.4, 0.4, (2, 500))
    p = params(12000.0, 17000.0, 37.0, 200.0, 2.0, 0.07, 25.0, 80.0)
    ours = compute_ctf(p, torch.tensor(fx), torch.tensor(fy)).numpy()
    # Same formula: identical with the same wavelength.
    theirs = relion_ctf(fx, fy, *p.tolist(), lam=electron_wavelength(200.0))
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # RELION's rounded constants agree with CODATA's to 1e-5; at |q| = 0.4/Å and 17000 Å
    # defocus that moves the phase by ~2 mrad.
    assert relion_wavelength(200.0) == pytest.approx(electron_wavelength(200.0), rel=1e-5)
    np.testing.assert_allclose(ours, relion_ctf(fx, fy, *p.tolist()), atol=5e-3)


def test_zero_frequency_is_plus_amplitude_contrast():
    zero = torch.zeros(1, dtype=torch.float64)
    assert compute_ctf(params(w=0.1), zero, zero).item() == pytest.approx(0.1)
    assert compute_ctf(params(w=0.07), zero, zero).item() == pytest.approx(0.07)
    # A 90° phase plate turns the amplitude-contrast term into a cosine.
    assert compute_ctf(params(w=0.1, phase=90.0), zero, zero).item() == pytest.approx(
        math.sqrt(0.99)
    )
    # Underfocus: the first lobe is positive (white particles after multiplying positive density).
    low = torch.tensor([0.01], dtype=torch.float64)
    assert compute_ctf(params(w=0.1), low, zero).item() > 0.1


def test_zeros_without_aberration_follow_defocus():
    defocus = 20000.0
    lam = electron_wavelength(300.0)
    p = params(defocus, defocus, cs=0.0, w=0.0)
    q = torch.tensor([math.sqrt(n / (lam * defocus)) for n in (1, 2, 3, 7)], dtype=torch.float64)
    values = compute_ctf(p, q, torch.zeros_like(q))
    assert torch.allclose(values, torch.zeros_like(values), atol=1e-9)
    # Between zeros |CTF| reaches 1.
    q_peak = torch.tensor([math.sqrt(0.5 / (lam * defocus))], dtype=torch.float64)
    assert compute_ctf(p, q_peak, torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(1.0)


def ctf_at(p, q):
    return compute_ctf(p, torch.tensor([q], dtype=torch.float64), torch.zeros(1).double()).item()


def test_zeros_with_spherical_aberration():
    defocus, cs_mm = 15000.0, 2.7
    lam = electron_wavelength(300.0)

    def chi(q):  # phase whose multiples of π are the zeros (no amplitude contrast)
        return math.pi * lam * defocus * q**2 - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * q**4

    # Zeros on a fine grid by sign changes, then refined; compare with χ(q) = nπ.
    p = params(defocus, defocus, cs=cs_mm, w=0.0)
    grid = torch.linspace(1e-3, 0.45, 20001, dtype=torch.float64)
    values = compute_ctf(p, grid, torch.zeros_like(grid)).numpy()
    crossings = np.nonzero(np.sign(values[1:]) != np.sign(values[:-1]))[0]
    assert len(crossings) > 10
    for i in crossings:
        lo, hi = grid[i].item(), grid[i + 1].item()
        q_zero = brentq(lambda q: ctf_at(p, q), lo, hi)
        n = round(chi(q_zero) / math.pi)
        q_expected = brentq(lambda q, n=n: chi(q) - n * math.pi, lo - 1e-3, hi + 1e-3)
        assert q_zero == pytest.approx(q_expected, abs=1e-9)


def test_astigmatism_angle_from_x_axis():
    du, dv, angle = 12000.0, 22000.0, 30.0
    p = params(du, dv, angle)
    r = torch.linspace(0.0, 0.3, 50, dtype=torch.float64)
    for direction, defocus in ((angle, du), (angle + 90.0, dv), (angle + 180.0, du)):
        theta = math.radians(direction)
        along = compute_ctf(p, r * math.cos(theta), r * math.sin(theta))
        iso = compute_ctf(params(defocus, defocus), r, torch.zeros_like(r))
        assert torch.allclose(along, iso, atol=1e-12)
    # The image layout: columns are q_x, so the defocus-u direction lies along a column axis.
    image = ctf_image(params(du, dv, 0.0)[None], 64, 1.5)
    iso_u = ctf_image(params(du, du, 0.0)[None], 64, 1.5)
    assert torch.allclose(image[0, 0, :], iso_u[0, 0, :], atol=1e-12)  # row q_y = 0


def test_b_factor_envelope():
    q = torch.linspace(0.0, 0.4, 30, dtype=torch.float64)
    zero = torch.zeros_like(q)
    ratio = compute_ctf(params(b=120.0), q, zero) / compute_ctf(params(b=0.0), q, zero)
    mask = compute_ctf(params(b=0.0), q, zero).abs() > 1e-3
    assert torch.allclose(ratio[mask], torch.exp(-120.0 * q[mask] ** 2 / 4))


def test_image_layout_and_batching():
    batch = torch.stack([params(10000.0, 11000.0, 20.0), params(25000.0, 24000.0, 70.0)])
    half = ctf_image(batch, 32, 2.0)
    full = ctf_image(batch, 32, 2.0, rfft=False)
    assert half.shape == (2, 32, 17) and full.shape == (2, 32, 32)
    assert torch.allclose(full[..., :16], half[..., :16])  # column 16: -Nyquist vs +Nyquist
    qy = torch.fft.fftfreq(32, d=2.0, dtype=torch.float64)
    qx = torch.fft.rfftfreq(32, d=2.0, dtype=torch.float64)
    single = compute_ctf(batch[1], qx[5], qy[3])
    assert half[1, 3, 5].item() == pytest.approx(single.item())
    shifted = ctf_image(batch, 32, 2.0, rfft=False, fftshift=True)
    assert torch.allclose(torch.fft.ifftshift(shifted, dim=(-2, -1)), full)
    assert compute_ctf(batch[:, None], qx, qy[:, None]).shape == (2, 1, 32, 17)


def test_differentiable_in_defocus():
    p = params(14000.0, 15000.0, 10.0).requires_grad_()
    qx, qy = torch.rand(5, dtype=torch.float64) * 0.2, torch.rand(5, dtype=torch.float64) * 0.2
    assert torch.autograd.gradcheck(lambda x: compute_ctf(x, qx, qy), (p,))

import math

import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.imaging.fourier import (
    cropped_noise_std,
    fft_frequencies,
    fourier_crop,
    fourier_shift,
    phase_ramp,
)


def test_frequency_grids_match_torch_fft():
    freq_y, freq_x = fft_frequencies(10, 2.0, rfft=True)
    assert freq_y.shape == freq_x.shape == (10, 6)
    assert torch.allclose(freq_y[:, 0], torch.fft.fftfreq(10, d=2.0))
    assert torch.allclose(freq_x[0], torch.fft.rfftfreq(10, d=2.0))
    freq_y, freq_x = fft_frequencies(9, 1.0, rfft=False, fftshift=True)
    assert freq_x[0, 4] == 0 and freq_y[4, 0] == 0
    with pytest.raises(InputError):
        fft_frequencies(8, 0.0)


@pytest.mark.parametrize("box", [16, 15])
def test_integer_shift_equals_roll(box, device):
    images = torch.randn(3, box, box, dtype=torch.float64, device=device)
    shifts = torch.tensor([[2.0, 0.0], [-3.0, 5.0], [0.0, -1.0]], dtype=torch.float64) * 1.5
    shifted = fourier_shift(images, shifts.to(device), pixel_size=1.5)
    for i, (sx, sy) in enumerate((shifts / 1.5).round().long().tolist()):
        # +x moves content to higher column index, +y to higher row index.
        expected = torch.roll(images[i], shifts=(sy, sx), dims=(-2, -1))
        assert torch.allclose(shifted[i], expected, atol=1e-12)


def test_subpixel_shifts_compose():
    torch.manual_seed(0)
    images = torch.randn(2, 15, 15, dtype=torch.float64)  # odd box: no Nyquist term
    a = torch.tensor([[0.3, -0.7], [1.2, 0.4]], dtype=torch.float64)
    b = torch.tensor([[0.45, 0.2], [-0.6, 2.1]], dtype=torch.float64)
    twice = fourier_shift(fourier_shift(images, a, 1.0), b, 1.0)
    assert torch.allclose(twice, fourier_shift(images, a + b, 1.0), atol=1e-12)
    back = fourier_shift(fourier_shift(images, a, 1.0), -a, 1.0)
    assert torch.allclose(back, images, atol=1e-12)


def test_phase_ramp_is_cosine_at_nyquist():
    sx, sy = 0.5, 0.25
    ramp = phase_ramp(torch.tensor([sx, sy], dtype=torch.float64), 8, 1.0)
    assert ramp.shape == (8, 5)
    kx = torch.arange(5, dtype=torch.float64) / 8
    along_x = torch.exp(-2j * torch.pi * kx * sx)
    along_x[4] = torch.cos(2 * torch.pi * kx[4] * sx)  # Nyquist column: the ±1/2 average
    assert torch.allclose(ramp[0], along_x)
    assert torch.allclose(ramp[1], torch.exp(torch.tensor(-2j * torch.pi * sy / 8)) * along_x)
    assert torch.allclose(ramp[4], torch.cos(torch.tensor(torch.pi * sy)).double() * along_x)


def test_fourier_shift_is_differentiable():
    images = torch.randn(1, 8, 8, dtype=torch.float64)
    shift = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: fourier_shift(images, s, 1.0), (shift,))


@pytest.mark.parametrize("box, new_box", [(32, 16), (32, 15), (31, 16), (31, 9)])
def test_crop_preserves_constant_and_integral(box, new_box):
    constant = torch.full((2, box, box), 3.5, dtype=torch.float64)
    assert torch.allclose(
        fourier_crop(constant, new_box), torch.full((2, new_box, new_box), 3.5, dtype=torch.float64)
    )
    torch.manual_seed(1)
    images = torch.randn(2, box, box, dtype=torch.float64)
    cropped = fourier_crop(images, new_box)
    pixel, new_pixel = 1.0, box / new_box
    assert torch.allclose(cropped.sum((-2, -1)) * new_pixel**2, images.sum((-2, -1)) * pixel**2)


def test_crop_of_a_smooth_image_samples_it_at_the_coarser_grid():
    # A wide Gaussian centred on the origin pixel is band-limited to high precision.
    box, new_box, sigma = 64, 32, 5.0
    coords = torch.arange(box, dtype=torch.float64) - box // 2
    gauss = torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma**2))
    cropped = fourier_crop(gauss[None], new_box)[0]
    new_coords = (torch.arange(new_box, dtype=torch.float64) - new_box // 2) * (box / new_box)
    expected = torch.exp(-(new_coords[:, None] ** 2 + new_coords[None, :] ** 2) / (2 * sigma**2))
    assert torch.allclose(cropped, expected, atol=1e-8)
    assert cropped.argmax() == (new_box // 2) * new_box + new_box // 2


def test_crop_rejects_growth():
    with pytest.raises(InputError):
        fourier_crop(torch.zeros(1, 8, 8), 10)
    assert torch.equal(fourier_crop(torch.ones(1, 8, 8), 8), torch.ones(1, 8, 8))


@pytest.mark.parametrize(("box", "new_box"), [(64, 32), (64, 16), (96, 64), (32, 30)])
def test_cropped_noise_std_matches_cropped_white_noise(box, new_box):
    generator = torch.Generator().manual_seed(1)
    noise = 2.5 * torch.randn(400, box, box, generator=generator, dtype=torch.float64)
    measured = float(fourier_crop(noise, new_box).std())
    samples = 400 * new_box**2
    # the standard error of a std estimated from n Gaussian samples is std / sqrt(2n)
    assert measured == pytest.approx(cropped_noise_std(2.5, box, new_box),
                                     rel=4 / math.sqrt(2 * samples))  # fmt: skip
    assert cropped_noise_std(2.5, box, box) == 2.5
    with pytest.raises(ValueError, match="even size"):
        cropped_noise_std(1.0, box, new_box + 1)

"""Image likelihoods: the real-space losses against closed forms, and their Fourier-space
forms (Parseval over the rfft2 half plane) against the real-space ones."""

import math

import pytest
import torch

from cryomotion.imaging.likelihood import (
    IMAGE_LOSSES,
    fourier_l2,
    gaussian_log_likelihood,
    image_correlation,
    image_l2,
    parseval_weights,
)


def test_l2_is_the_mean_squared_difference():
    a, b = torch.zeros(2, 4, 4), torch.full((2, 4, 4), 3.0)
    torch.testing.assert_close(image_l2(a, b), torch.tensor([9.0, 9.0]))
    assert IMAGE_LOSSES["l2"] is image_l2 and IMAGE_LOSSES["correlation"] is image_correlation


def test_correlation_is_one_minus_the_cosine_and_blind_to_scale():
    torch.manual_seed(0)
    measured = torch.randn(3, 8, 8)
    rendered = torch.randn(3, 8, 8)
    cosine = torch.nn.functional.cosine_similarity(rendered.flatten(1), measured.flatten(1))
    torch.testing.assert_close(image_correlation(rendered, measured), 1 - cosine)
    torch.testing.assert_close(image_correlation(5.0 * measured, measured), torch.zeros(3),
                               atol=1e-6, rtol=0)  # fmt: skip
    torch.testing.assert_close(image_correlation(-measured, measured), torch.full((3,), 2.0))
    torch.testing.assert_close(image_correlation(7.0 * rendered, 0.1 * measured),
                               image_correlation(rendered, measured))  # fmt: skip


def test_correlation_of_an_empty_image_is_finite_with_finite_gradients():
    rendered = torch.zeros(2, 8, 8, requires_grad=True)
    loss = image_correlation(rendered, torch.randn(2, 8, 8))
    loss.sum().backward()
    assert torch.equal(loss.detach(), torch.ones(2))
    assert torch.isfinite(rendered.grad).all()


def test_real_space_losses_take_leading_dimensions_unchanged():
    generator = torch.Generator().manual_seed(1)
    rendered = torch.randn(2, 3, 4, 8, 8, generator=generator)
    measured = torch.randn(2, 1, 1, 8, 8, generator=generator)
    expanded = measured.expand_as(rendered)
    for loss in (image_l2, image_correlation):
        got = loss(rendered, measured)
        assert got.shape == (2, 3, 4)
        flat = loss(rendered.reshape(-1, 8, 8), expanded.reshape(-1, 8, 8))
        assert torch.equal(got.reshape(-1), flat)


@pytest.mark.parametrize("box", [16, 15])
def test_fourier_l2_equals_the_real_space_l2(box):
    generator = torch.Generator().manual_seed(box)
    rendered = torch.randn(3, 2, box, box, dtype=torch.float64, generator=generator)
    measured = torch.randn(3, 1, box, box, dtype=torch.float64, generator=generator)
    expected = (rendered - measured).square().mean((-2, -1))
    got = fourier_l2(torch.fft.rfft2(rendered), torch.fft.rfft2(measured), box)
    assert got.shape == (3, 2) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    # Also float32 against today's float32 loss.
    got32 = fourier_l2(torch.fft.rfft2(rendered.float()), torch.fft.rfft2(measured.float()), box)
    torch.testing.assert_close(got32, image_l2(rendered, measured), atol=0, rtol=1e-5)
    # Gradients agree too (the function is a quadratic form in the real image).
    x = rendered.clone().requires_grad_()
    fourier_l2(torch.fft.rfft2(x), torch.fft.rfft2(measured), box).sum().backward()
    torch.testing.assert_close(x.grad, 2 * (rendered - measured) / box**2, atol=1e-12, rtol=0)


def test_parseval_weights():
    assert parseval_weights(4).tolist() == [1.0, 2.0, 1.0]
    assert parseval_weights(5).tolist() == [1.0, 2.0, 2.0]


@pytest.mark.parametrize("box", [12, 11])
def test_gaussian_log_likelihood_is_the_real_space_gaussian_density(box):
    generator = torch.Generator().manual_seed(2 + box)
    rendered = torch.randn(4, box, box, dtype=torch.float64, generator=generator)
    sigma = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    measured = rendered + sigma[:, None, None] * torch.randn(
        4, box, box, dtype=torch.float64, generator=generator
    )
    density = torch.distributions.Normal(rendered, sigma[:, None, None])
    expected = density.log_prob(measured).sum((-2, -1))
    spectra, measured_spectra = torch.fft.rfft2(rendered), torch.fft.rfft2(measured)
    got = gaussian_log_likelihood(spectra, measured_spectra, sigma, box)
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-12)
    scalar = gaussian_log_likelihood(spectra[:1], measured_spectra[:1], 0.5, box)
    torch.testing.assert_close(scalar, expected[:1], atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("box", [12, 11])
def test_band_limited_gaussian_log_likelihood(box):
    # The density of the residual projected onto the band: an orthogonal projection of white
    # noise, so −|P r|²/(2σ²) − (n/2) log 2πσ² with n the band's dimension.
    generator = torch.Generator().manual_seed(3 + box)
    rendered = torch.randn(2, box, box, dtype=torch.float64, generator=generator)
    measured = torch.randn(2, box, box, dtype=torch.float64, generator=generator)
    freq_y = torch.fft.fftfreq(box, dtype=torch.float64)[:, None]
    freq_x = torch.fft.rfftfreq(box, dtype=torch.float64)[None, :]
    band = (freq_x**2 + freq_y**2) <= 0.3**2
    sigma = 1.7
    residual = torch.fft.irfft2(torch.fft.rfft2(measured - rendered) * band, s=(box, box))
    full_band = (
        torch.fft.fftfreq(box)[:, None] ** 2 + torch.fft.fftfreq(box)[None, :] ** 2
    ) <= 0.09
    n = int(full_band.sum())
    expected = -residual.square().sum((-2, -1)) / (2 * sigma**2) - n / 2 * math.log(
        2 * math.pi * sigma**2
    )
    got = gaussian_log_likelihood(
        torch.fft.rfft2(rendered), torch.fft.rfft2(measured), sigma, box, band=band
    )
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-12)
    everything = torch.ones_like(band)
    torch.testing.assert_close(
        gaussian_log_likelihood(
            torch.fft.rfft2(rendered), torch.fft.rfft2(measured), sigma, box, band=everything
        ),
        gaussian_log_likelihood(torch.fft.rfft2(rendered), torch.fft.rfft2(measured), sigma, box),
    )


def test_shape_errors():
    with pytest.raises(ValueError):
        fourier_l2(torch.zeros(2, 8, 5, dtype=torch.complex64), torch.zeros(2, 8, 4), 8)

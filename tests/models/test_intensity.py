"""The intensity scale: normalisation of measured images and the fitted gain of rendered ones."""

import numpy as np
import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.models.intensity import (
    IntensityScale,
    background_mask,
    background_statistics,
    fitted_scale,
)


def blob_images(n=64, box=32, seed=0):
    """Gaussian blobs of random widths and heights in the middle of the box: (n, box, box)."""
    rng = np.random.default_rng(seed)
    axis = np.arange(box) - box // 2
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    widths = rng.uniform(2.0, 5.0, n)
    heights = rng.uniform(0.5, 1.5, n)
    images = heights[:, None, None] * np.exp(-r2[None] / (2 * widths[:, None, None] ** 2))
    return torch.tensor(images, dtype=torch.float32)


def test_background_mask_is_the_corners_outside_the_inscribed_circle():
    mask = background_mask(32)
    assert mask[0, 0] and mask[-1, -1] and mask[0, -1]
    assert not mask[16, 16] and not mask[16, 0] and not mask[0, 16]
    # the corners are 1 - π/4 of the square
    assert abs(float(mask.float().mean()) - (1 - np.pi / 4)) < 0.03


def test_background_statistics_of_pure_noise():
    rng = torch.Generator().manual_seed(0)
    images = 3.0 + 2.5 * torch.randn(200, 48, 48, generator=rng)
    mean, sd = background_statistics(images)
    assert torch.allclose(mean, torch.full_like(mean, 3.0), atol=0.5)
    assert abs(float(sd.median()) - 2.5) < 0.05


def test_calibration_recovers_the_gain_and_the_noise_level():
    """measured = σ·(g·rendered + unit noise) + offset: σ and g come back."""
    rendered = blob_images()
    sigma, gain, offset = 7.0, 0.3, 100.0
    noise = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(1))
    measured = sigma * (gain * rendered + noise) + offset
    scale = IntensityScale(1, "fitted")
    scale.calibrate(measured, rendered, torch.zeros(len(rendered), dtype=torch.long))
    assert abs(float(scale.noise_sigma) / sigma - 1) < 0.03
    assert abs(float(scale.log_gain.detach().exp()) / gain - 1) < 0.1
    normalized = scale.normalize(measured)
    assert abs(float(normalized[:, background_mask(32)].std()) - 1) < 0.03


@pytest.mark.parametrize("factor", [0.1, 10.0, 1e4])
def test_normalised_images_do_not_depend_on_the_data_units(factor):
    rendered = blob_images()
    noise = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(2))
    measured = 0.5 * rendered + 0.2 * noise
    groups = torch.zeros(len(rendered), dtype=torch.long)
    base, scaled = IntensityScale(1), IntensityScale(1)
    base.calibrate(measured, rendered, groups)
    scaled.calibrate(measured * factor, rendered, groups)
    torch.testing.assert_close(scaled.log_gain, base.log_gain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        scaled.normalize(measured * factor), base.normalize(measured), rtol=1e-4, atol=1e-4
    )


def test_each_optics_group_gets_its_own_gain():
    rendered = blob_images(n=80)
    groups = torch.arange(80) % 2
    noise = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(3))
    gains = torch.tensor([0.2, 0.8])
    measured = gains[groups][:, None, None] * rendered + 0.05 * noise
    scale = IntensityScale(2)
    scale.calibrate(measured, rendered, groups)
    sigma = float(scale.noise_sigma)
    torch.testing.assert_close(scale.log_gain.exp() * sigma, gains, rtol=0.05, atol=0)
    out = scale.scale_rendered(rendered[:2], groups[:2])
    torch.testing.assert_close(out[1] / out[0], rendered[1] / rendered[0] * 4, rtol=0.1, atol=1e-3)


def test_inverted_contrast_is_refused_with_the_flag_to_use():
    rendered = blob_images()
    noise = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(4))
    with pytest.raises(InputError, match="--invert-data") as info:
        IntensityScale(1).calibrate(
            -rendered + 0.1 * noise, rendered, torch.zeros(64, dtype=torch.long), "p.star"
        )
    assert "p.star" in str(info.value)


def test_blank_images_are_refused():
    rendered = blob_images()
    with pytest.raises(InputError, match="standard deviation"):
        IntensityScale(1).calibrate(
            torch.zeros_like(rendered), rendered, torch.zeros(64, dtype=torch.long)
        )


def test_undetectable_signal_warns_and_starts_at_the_noise_level(caplog):
    rendered = blob_images()
    noise = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(5))
    scale = IntensityScale(1)
    scale.calibrate(noise, rendered, torch.zeros(64, dtype=torch.long))
    assert "no detectable signal" in caplog.text
    rms = float(scale.scale_rendered(rendered, None).detach().square().mean().sqrt())
    assert abs(rms - 1) < 1e-3


def test_mode_none_leaves_images_as_they_are():
    scale = IntensityScale(1, "none")
    images = blob_images()
    scale.calibrate(images * 5, images, torch.zeros(64, dtype=torch.long))
    assert torch.equal(scale.normalize(images), images)
    assert torch.equal(scale.scale_rendered(images, None), images)
    assert not scale.log_gain.requires_grad


def test_unknown_mode_is_refused():
    with pytest.raises(InputError, match="fitted"):
        IntensityScale(1, "magic")


def test_fitted_scale_is_the_least_squares_solution():
    rendered = blob_images(n=8)
    measured = torch.randn(rendered.shape, generator=torch.Generator().manual_seed(6))
    measured = measured + 2.0 * rendered
    a = fitted_scale(rendered, measured)
    for i in range(8):
        x = rendered[i].flatten().double()[:, None]
        expected = torch.linalg.lstsq(x, measured[i].flatten().double()[:, None]).solution
        assert abs(float(a[i]) - float(expected)) < 1e-4
    # an anticorrelated image gets scale 0, not a negative one
    assert float(fitted_scale(rendered[:1], -rendered[:1])[0]) == 0.0


def test_the_scale_for_other_images_puts_renderings_in_their_units():
    """The same particles at two crops: data = A·rendered + noise at either (a Fourier crop
    keeps pixel values' meaning, not the noise's σ). A scale whose gain maps the 32-px
    renderings onto the normalised 32-px images, converted for the 64-px images
    (``for_images``), maps the 64-px renderings onto those: gain A/σ64 there."""
    from cryomotion.imaging.fourier import fourier_crop

    generator = torch.Generator().manual_seed(4)
    rendered64 = blob_images(n=200, box=64, seed=4).double() * 3.0
    amplitude, sigma = 40.0, 5.0
    measured64 = amplitude * rendered64 + sigma * torch.randn(rendered64.shape,
                                                              generator=generator,
                                                              dtype=torch.float64)  # fmt: skip
    measured32 = fourier_crop(measured64, 32)
    scale = IntensityScale(1, "fitted")
    scale.calibrate(measured32.float(), fourier_crop(rendered64, 32).float(),
                    torch.zeros(200, dtype=torch.long))  # fmt: skip
    other = scale.for_images(measured64.float(), "64-px images")
    assert abs(float(other.noise_sigma) / sigma - 1) < 0.03
    assert abs(float(other.log_gain.exp()) / (amplitude / sigma) - 1) < 0.05
    # the original is untouched, and a "none" scale stays one
    assert abs(float(scale.noise_sigma) / (sigma / 2) - 1) < 0.05
    none = IntensityScale(1, "none").for_images(measured64.float(), "64-px images")
    assert float(none.noise_sigma) == 1.0

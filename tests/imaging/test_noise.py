import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.imaging.noise import add_white_noise, noise_std, snr_from_db


def test_snr_from_db():
    assert snr_from_db(10.0) == pytest.approx(10.0)
    assert snr_from_db(0.0) == pytest.approx(1.0)
    assert snr_from_db(-20.0) == pytest.approx(0.01)
    assert torch.allclose(snr_from_db(torch.tensor([-10.0, 3.0])), torch.tensor([0.1, 1.99526]))


@pytest.mark.parametrize("snr", [0.1, 0.01])
def test_measured_variance_ratio(snr, device):
    generator = torch.Generator(device=device).manual_seed(0)
    clean = torch.zeros(16, 128, 128, device=device, dtype=torch.float64)
    clean[:, 40:80, 50:70] = torch.rand(16, 1, 1, device=device, dtype=torch.float64) + 0.5
    noisy = add_white_noise(clean, snr, generator=generator)
    ratio = clean.var((-2, -1), unbiased=False) / (noisy - clean).var((-2, -1), unbiased=False)
    # 16384 pixels per image: the variance estimate is good to ~1 % (2σ ≈ 2.2 %).
    assert torch.allclose(ratio, torch.full_like(ratio, snr), rtol=0.04)
    again = add_white_noise(clean, snr, generator=torch.Generator(device=device).manual_seed(0))
    assert torch.equal(noisy, again)


def test_per_image_snr_and_checks():
    clean = torch.randn(2, 32, 32, dtype=torch.float64)
    sigma = noise_std(clean, torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert torch.allclose(
        sigma**2 * torch.tensor([1.0, 4.0]).double(), clean.var((-2, -1), unbiased=False)
    )
    with pytest.raises(InputError):
        add_white_noise(clean, 0.0)

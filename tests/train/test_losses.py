"""Image losses and the latent KL against closed forms."""

import math

import torch

from cryomotion.train.losses import gaussian_kl, image_correlation, image_l2


def test_l2_is_the_mean_squared_difference():
    a, b = torch.zeros(2, 4, 4), torch.full((2, 4, 4), 3.0)
    torch.testing.assert_close(image_l2(a, b), torch.tensor([9.0, 9.0]))


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


def test_gaussian_kl_matches_the_closed_form():
    mean = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    log_var = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]])
    # KL(N(m, s²) || N(0, 1)) = (m² + s² - 1 - ln s²) / 2 per dimension
    expected = torch.tensor([0.0, (1 + 4 - 1 - math.log(4.0)) / 2 + 4 / 2])
    torch.testing.assert_close(gaussian_kl(mean, log_var), expected)

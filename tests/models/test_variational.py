"""KL, reparameterisation and log-mean-exp against closed forms and Monte Carlo."""

import math

import pytest
import torch

from cryomotion.models.variational import gaussian_kl, logmeanexp, reparameterize


def test_gaussian_kl_matches_the_closed_form():
    mean = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    log_var = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]])
    # KL(N(m, s²) || N(0, 1)) = (m² + s² - 1 - ln s²) / 2 per dimension
    expected = torch.tensor([0.0, (1 + 4 - 1 - math.log(4.0)) / 2 + 4 / 2])
    torch.testing.assert_close(gaussian_kl(mean, log_var), expected)
    # Leading dimensions.
    assert gaussian_kl(torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)).shape == (2, 3)


def test_gaussian_kl_matches_monte_carlo():
    generator = torch.Generator().manual_seed(0)
    mean = torch.tensor([[0.3, -1.2, 0.5]], dtype=torch.float64)
    log_var = torch.tensor([[-0.5, 0.4, -1.5]], dtype=torch.float64)
    z = reparameterize(mean, log_var, 400_000, generator=generator)  # (1, S, 3)
    posterior = torch.distributions.Normal(mean[:, None], torch.exp(0.5 * log_var)[:, None])
    prior = torch.distributions.Normal(0.0, 1.0)
    estimate = (posterior.log_prob(z) - prior.log_prob(z)).sum(-1).mean(-1)
    torch.testing.assert_close(estimate, gaussian_kl(mean, log_var), atol=5e-3, rtol=0)


def test_reparameterize_shapes_moments_and_gradients():
    generator = torch.Generator().manual_seed(1)
    mean = torch.randn(2, 3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    log_var = torch.randn(2, 3, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    z = reparameterize(mean, log_var, 50_000, generator=generator)
    assert z.shape == (2, 3, 50_000, 4)
    torch.testing.assert_close(z.mean(-2), mean.detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(-2).log(), log_var.detach(), atol=0.05, rtol=0)
    z.sum().backward()
    torch.testing.assert_close(mean.grad, torch.full_like(mean, 50_000.0))
    assert torch.isfinite(log_var.grad).all()
    with pytest.raises(ValueError):
        reparameterize(mean, log_var, 0)


def test_logmeanexp():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(4, 1, 3, dtype=torch.float64, generator=generator)
    # Over one sample: the value itself (and so equal to the mean).
    torch.testing.assert_close(logmeanexp(x, dim=1), x[:, 0])
    torch.testing.assert_close(logmeanexp(x, dim=1), x.mean(1))
    # Over equal values: that value.
    equal = torch.full((3, 7), -2.5, dtype=torch.float64)
    torch.testing.assert_close(
        logmeanexp(equal, dim=-1), torch.full((3,), -2.5, dtype=torch.float64)
    )
    # Against the direct formula, and stable for large magnitudes.
    y = torch.randn(5, 6, dtype=torch.float64, generator=generator)
    torch.testing.assert_close(logmeanexp(y, dim=1), y.exp().mean(1).log())
    big = torch.tensor([[-1000.0, -1001.0]], dtype=torch.float64)
    expected = -1000.0 + math.log((1 + math.exp(-1.0)) / 2)
    assert logmeanexp(big, dim=1).item() == pytest.approx(expected, rel=1e-14)
    assert logmeanexp(x, dim=1, keepdim=True).shape == (4, 1, 3)

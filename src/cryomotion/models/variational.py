"""Variational pieces shared by every system: the Gaussian posterior's KL to N(0, I), its
reparameterised samples, and the log-mean-exp reduction over samples (an importance-weighted
estimate of the log likelihood, AtomVAE's objective)."""

from __future__ import annotations

import math

import torch


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per row: (..., d), (..., d) -> (...)."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=-1)


def reparameterize(
    mean: torch.Tensor,
    log_var: torch.Tensor,
    samples: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``samples`` draws of N(mean, exp(log_var)): (..., d), (..., d) -> (..., samples, d),
    mean + exp(log_var / 2)·ε with ε ~ N(0, I), differentiable in mean and log_var."""
    if int(samples) < 1:
        raise ValueError(f"{samples} samples: expected at least one")
    mean, log_var = torch.broadcast_tensors(mean, log_var)
    shape = mean.shape[:-1] + (int(samples), mean.shape[-1])
    noise = torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean.unsqueeze(-2) + torch.exp(0.5 * log_var).unsqueeze(-2) * noise


def logmeanexp(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """log( mean_i exp(x_i) ) along ``dim``, stably: logsumexp − log n."""
    return torch.logsumexp(x, dim=dim, keepdim=keepdim) - math.log(x.shape[dim])

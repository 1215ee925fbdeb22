"""The segments system's defaults against the low-SNR collapse (docs/results.md, section
segments_collapse): no latent KL, and q(z|x) starting narrow (σ 0.05); the paper's VAE
(β 1e-4, σ 1 at the start) is one setting away."""

import math

import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.systems.registry import get_system
from cryomotion.systems.segments import SegmentSettings
from cryomotion.train.config import RunConfig
from cryomotion.train.run import amortized_encoder

SYSTEM = get_system("segments")


class _Deformation:
    latent_scale = 1.0


def _encoder(config: RunConfig):
    config.model.latent_dim = 6
    return amortized_encoder(config, 32, _Deformation(), variational=True).train()


def test_default_objective_has_no_latent_kl():
    objective = SYSTEM.objective(SegmentSettings())
    assert objective.likelihood == "correlation"
    assert objective.prior_weights == {"latent_kl": 0.0}
    paper = SYSTEM.objective(SegmentSettings(latent_kl_weight=1e-4, likelihood="gaussian"))
    assert (paper.likelihood, paper.prior_weights["latent_kl"]) == ("gaussian", 1e-4)
    with pytest.raises(InputError, match="deformation.likelihood 'l1'"):
        SYSTEM.objective(SegmentSettings(likelihood="l1"))


def test_posterior_starts_narrow_and_can_start_at_the_prior():
    images = torch.randn(4, 32, 32)
    batch = {"rotation": torch.eye(3).expand(4, 3, 3), "shift": torch.zeros(4, 2)}
    config = RunConfig(system="segments")
    estimates = _encoder(config)(images, batch)
    assert torch.allclose(estimates.log_var, torch.full((4, 6), -6.0))
    spread = float((estimates.latents - estimates.mean_latents[:, None]).detach().std())
    assert spread == pytest.approx(math.exp(-3.0), rel=0.5)  # σ = 0.05
    config.model.latent_log_var_init = 0.0
    assert torch.equal(_encoder(config)(images, batch).log_var, torch.zeros(4, 6))

"""Image losses between rendered and measured particle images, and the VAE's latent KL."""

from __future__ import annotations

from collections.abc import Callable

import torch

# Per-image norms below this count as zero (an all-zero rendered image has no direction).
_NORM_FLOOR = 1e-12


def image_l2(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per image: (B, D, D), (B, D, D) -> (B,) (seed 000's L2 loss)."""
    return (rendered.float() - measured.float()).square().flatten(1).mean(dim=1)


def image_correlation(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """1 − <ŷ, y> / (|ŷ| |y|) per image: (B, D, D), (B, D, D) -> (B,) in [0, 2].

    cryoSPHERE's loss (seed 001, eq. 7): blind to the images' scale, which preprocessing
    may have changed. Finite for an all-zero image (loss 1, as for an uncorrelated one).
    """
    rendered, measured = rendered.float().flatten(1), measured.float().flatten(1)
    dot = (rendered * measured).sum(dim=1)
    norms = rendered.square().sum(dim=1) * measured.square().sum(dim=1)
    return 1.0 - dot * torch.rsqrt(norms.clamp_min(_NORM_FLOOR))


IMAGE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": image_l2,
    "correlation": image_correlation,
}


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per row: (B, d), (B, d) -> (B,)."""
    return 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=-1)

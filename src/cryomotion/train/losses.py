"""Image losses between rendered and measured particle images."""

from __future__ import annotations

import torch


def image_l2(rendered: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """Mean squared difference per image: (B, D, D), (B, D, D) -> (B,) (seed 000's L2 loss)."""
    return (rendered.float() - measured.float()).square().flatten(1).mean(dim=1)

"""Deprecated location, kept while the upper layers move: the image losses live in
``cryomotion.imaging.likelihood`` and the KL in ``cryomotion.models.variational``."""

from __future__ import annotations

from cryomotion.imaging.likelihood import IMAGE_LOSSES, image_correlation, image_l2
from cryomotion.models.variational import gaussian_kl

__all__ = ["IMAGE_LOSSES", "gaussian_kl", "image_correlation", "image_l2"]

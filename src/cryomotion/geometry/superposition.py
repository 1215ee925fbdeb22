"""Least-squares superposition (Kabsch) in torch, over leading dimensions, differentiable.

Used to take the rigid-body part out of a deformation: when a per-particle pose is refined,
a deformation that can also rotate the whole model (segments moving together) would trade
global rotations with the pose; aligning each deformed model onto the reference first
(its Eckart frame) leaves the global rotation to the pose alone.
"""

from __future__ import annotations

import torch


def kabsch(points: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation R (..., 3, 3) and translation t (..., 3) minimising
    Σ |R p_i + t − r_i|² for points (..., P, 3) onto reference (P, 3) or (..., P, 3), in Å."""
    p_mean = points.mean(dim=-2, keepdim=True)
    r_mean = reference.mean(dim=-2, keepdim=True)
    covariance = (points - p_mean).transpose(-1, -2) @ (reference - r_mean)  # (..., 3, 3)
    u, _, vh = torch.linalg.svd(covariance)
    # a reflection is not a rotation: flip the smallest singular direction when det < 0
    sign = torch.sign(torch.linalg.det(vh.transpose(-1, -2) @ u.transpose(-1, -2)))
    flip = torch.ones_like(covariance[..., 0])
    flip = torch.cat([flip[..., :2], sign[..., None]], dim=-1)
    rotation = vh.transpose(-1, -2) @ (flip[..., :, None] * u.transpose(-1, -2))
    translation = r_mean[..., 0, :] - (rotation @ p_mean[..., 0, :, None])[..., 0]
    return rotation, translation


def superpose_onto(points: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Points (..., P, 3) moved rigidly onto ``reference`` (P, 3) by ``kabsch``."""
    rotation, translation = kabsch(points, reference)
    return points @ rotation.transpose(-1, -2) + translation[..., None, :]

"""AtomVAE's pose latent (seed 002): 8 numbers -> a pose, under ``--pose-mode``.

The latent p (..., 8) is two in-plane translation coordinates and a 6-vector turned into a
rotation by Gram–Schmidt (``geometry.rotations.gram_schmidt``). Its prior is N(0, I), which
for the rotation is the uniform (Haar) distribution: Gram–Schmidt of a standard normal
6-vector has a first column uniform on the sphere and a second uniform on the circle
orthogonal to it.

- ``infer``: R = gram_schmidt(p[2:8]), shift = ``shift_scale`` · p[:2] Å; nothing from the
  particle file.
- ``refine``: a correction around the file's pose, R = R_file · gram_schmidt(e + s·p[2:8])
  with e = (1, 0, 0, 0, 1, 0) (so p = 0 is the file's rotation) and s = ``rotation_scale``,
  shift = shift_file + ``shift_scale`` · p[:2] Å.
"""

from __future__ import annotations

import torch

from cryomotion.geometry.rotations import gram_schmidt
from cryomotion.imaging.pose import Pose
from cryomotion.models.pose import PoseMode

POSE_LATENT_DIM = 8
IDENTITY_SIX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def pose_from_latent(
    latent: torch.Tensor,
    mode: PoseMode,
    given: Pose | None = None,
    shift_scale: float = 2.0,
    rotation_scale: float = 1.0,
) -> Pose:
    """Pose latents (..., 8) -> ``Pose`` (...); ``given`` (broadcasting against ...) is the
    file's pose, needed for ``refine`` (module docstring)."""
    if latent.shape[-1] != POSE_LATENT_DIM:
        raise ValueError(f"pose latents {tuple(latent.shape)}: expected (..., 8)")
    shifts = shift_scale * latent[..., :2]
    if mode is PoseMode.INFER:
        return Pose(gram_schmidt(latent[..., 2:]), shifts)
    if mode is PoseMode.REFINE:
        if given is None:
            raise ValueError("refining a pose needs the file's pose")
        six = latent.new_tensor(IDENTITY_SIX) + rotation_scale * latent[..., 2:]
        rotations = given.rotations.to(latent.dtype) @ gram_schmidt(six)
        return Pose(rotations, given.shifts.to(latent.dtype) + shifts)
    raise ValueError(f"pose mode {mode.value!r} has no pose latent")

"""Pose modes: how a particle's pose is obtained (``--pose-mode``).

- ``given``: the particle file's rotation, and its shift plus the predicted correction
  (seed 000's shift head), as every system did before pose modes existed;
- ``refine``: the file's pose composed with a per-particle correction, a rotation vector
  Δω (radians, in the model frame) and a shift Δt (Å), optimised with the rest of the
  model (as RELION 5's DynaMight refines poses): R = R_file · exp([Δω]×), t = t_file + Δt;
- ``infer``: no pose from the file (AtomVAE, seed 002; the file's pose only scores).
"""

from __future__ import annotations

from enum import Enum

import torch

from cryomotion.errors import InputError
from cryomotion.geometry.rotations import rotvec_to_matrix
from cryomotion.imaging.pose import Pose


class PoseMode(str, Enum):
    GIVEN = "given"
    REFINE = "refine"
    INFER = "infer"

    @classmethod
    def parse(cls, value: str | PoseMode) -> PoseMode:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise InputError(f"--pose-mode {value!r}: expected one of {names}") from None


def compose_pose(
    given: Pose, rotation_correction: torch.Tensor | None, shift_correction: torch.Tensor | None
) -> Pose:
    """``given`` (...,) composed with corrections: rotation vectors (..., 3) radians,
    R = R_given · exp([Δω]×), and shifts (..., 2) Å, t = t_given + Δt; None leaves it."""
    rotations, shifts = given.rotations, given.shifts
    if rotation_correction is not None:
        correction = rotvec_to_matrix(rotation_correction.to(rotations.dtype))
        rotations = rotations @ correction
    if shift_correction is not None:
        shifts = shifts + shift_correction.to(shifts.dtype)
    return Pose(rotations, shifts)

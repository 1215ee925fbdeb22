"""The one pose type of rendering, inference and run files (docs/conventions.md).

A pose maps model coordinates into the microscope frame, x_mic = R (x − c) with c the
renderer's rotation centre (R is RELION's Euler matrix), and translates the projection by
+shift Å as (x, y) (RELION's rlnOriginXAngst/YAngst). Poses carry arbitrary leading
dimensions, (...,): (B,) one per image, (B, S) samples per image, and so on.

``Pose`` is a ``NamedTuple``, so ``rotations, shifts = pose`` and ``pose.rotations`` both work;
``pose[i]`` is tuple indexing (the i-th field): index the poses with ``pose.select``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def _shape(args: tuple) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` alike."""
    if len(args) == 1 and not isinstance(args[0], int):
        return tuple(args[0])
    return tuple(args)


class Pose(NamedTuple):
    """rotations (..., 3, 3) model → microscope, x_mic = R (x − c); shifts (..., 2) Å,
    image = projection translated by +shift."""

    rotations: torch.Tensor
    shifts: torch.Tensor

    @classmethod
    def identity(
        cls,
        batch_shape: tuple[int, ...] | torch.Size = (),
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Pose:
        """Identity rotations and zero shifts of shape ``batch_shape``."""
        batch_shape = tuple(batch_shape)
        eye = torch.eye(3, dtype=dtype, device=device)
        return cls(
            eye.expand(batch_shape + (3, 3)).clone(),
            torch.zeros(batch_shape + (2,), dtype=dtype, device=device),
        )

    @classmethod
    def from_rotations(cls, rotations: torch.Tensor, shifts: torch.Tensor | None = None) -> Pose:
        """A pose from rotations (..., 3, 3) and optional shifts (None: zero)."""
        if shifts is None:
            shifts = rotations.new_zeros(rotations.shape[:-2] + (2,))
        return cls(rotations, shifts).check()

    def check(self) -> Pose:
        """``self`` after checking the trailing shapes and that the batch shapes broadcast."""
        if self.rotations.dim() < 2 or self.rotations.shape[-2:] != (3, 3):
            raise ValueError(f"rotations must be (..., 3, 3), got {tuple(self.rotations.shape)}")
        if self.shifts.dim() < 1 or self.shifts.shape[-1] != 2:
            raise ValueError(f"shifts must be (..., 2) Å, got {tuple(self.shifts.shape)}")
        try:
            torch.broadcast_shapes(self.rotations.shape[:-2], self.shifts.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"rotations {tuple(self.rotations.shape)} and shifts {tuple(self.shifts.shape)} "
                "have batch shapes that do not broadcast"
            ) from None
        return self

    @property
    def batch_shape(self) -> torch.Size:
        """The broadcast leading shape (...) of rotations and shifts."""
        return torch.broadcast_shapes(self.rotations.shape[:-2], self.shifts.shape[:-1])

    def expand(self, *batch_shape: int) -> Pose:
        """Both fields broadcast to ``batch_shape`` (views, no copy)."""
        shape = _shape(batch_shape)
        return Pose(self.rotations.expand(shape + (3, 3)), self.shifts.expand(shape + (2,)))

    def reshape(self, *batch_shape: int) -> Pose:
        """Both fields broadcast to a common batch shape and reshaped to ``batch_shape``."""
        shape = _shape(batch_shape)
        common = self.expand(self.batch_shape)
        return Pose(common.rotations.reshape(shape + (3, 3)), common.shifts.reshape(shape + (2,)))

    def flatten(self) -> Pose:
        """(N, 3, 3), (N, 2) with N the product of the batch shape (``unflatten`` inverts)."""
        return self.reshape(-1)

    def unflatten(self, batch_shape: tuple[int, ...] | torch.Size) -> Pose:
        """Inverse of ``flatten``: (N, ...) -> (batch_shape, ...)."""
        return self.reshape(tuple(batch_shape))

    def select(self, index) -> Pose:
        """The poses at ``index`` (anything a tensor accepts over the batch dimensions).

        Not ``pose[index]``: that is the tuple's field access."""
        common = self.expand(self.batch_shape)
        return Pose(common.rotations[index], common.shifts[index])

    def unsqueeze(self, dim: int) -> Pose:
        """A new batch dimension at ``dim`` (counted among the batch dimensions, ≥ 0 or < 0)."""
        if dim < 0:
            dim = len(self.batch_shape) + 1 + dim
        common = self.expand(self.batch_shape)
        return Pose(common.rotations.unsqueeze(dim), common.shifts.unsqueeze(dim))

    def to(self, *args, **kwargs) -> Pose:
        """``Tensor.to`` on both fields (device and/or dtype)."""
        return Pose(self.rotations.to(*args, **kwargs), self.shifts.to(*args, **kwargs))

    def detach(self) -> Pose:
        return Pose(self.rotations.detach(), self.shifts.detach())

"""Rotations in torch, over arbitrary leading dimensions (``...``), differentiable.

Conventions: a rotation matrix R (..., 3, 3) acts on column vectors, x' = R x (the renderer's
x_mic = R (x − c)). A rotation vector ω (..., 3) is the axis times the angle θ = |ω| in
radians (R = exp([ω]×)). Quaternions are scalar first, q = (w, x, y, z) — note that
``scipy.spatial.transform.Rotation`` is scalar last. Every function is smooth where the
rotation is: series replace the formulas' 0/0 at θ = 0, so values and gradients stay finite.
"""

from __future__ import annotations

import torch

# θ² below which rotvec_to_matrix uses its Taylor series (θ < 1e-3 rad: the first omitted
# terms are θ⁶/5040 and θ⁶/40320, below float64's resolution of the leading 1 and 1/2).
_SMALL_ANGLE2 = 1e-6
# |v|² below which a quaternion's vector part counts as zero in quaternion_to_rotvec.
_SMALL_VECTOR2 = 1e-12
# Floor of the squared candidates in matrix_to_quaternion before their square root: keeps
# the unselected candidates' gradients finite (they are multiplied by zero).
_SQRT_FLOOR = 1e-30


def skew(vectors: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices [v]×, [v]× x = v × x."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        -2,
    )


def rotvec_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues: ω (..., 3) -> R = I + sin θ/θ [ω]× + (1 − cos θ)/θ² [ω]×² (..., 3, 3).

    (1 − cos θ) is written 2 sin²(θ/2) (no cancellation in float32); below θ = 1e-3 rad both
    coefficients are their Taylor series, so R and its gradient are exact at ω = 0.
    """
    theta2 = (rotvec * rotvec).sum(-1)
    small = theta2 < _SMALL_ANGLE2
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    half = torch.sin(0.5 * theta)
    f1 = torch.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, torch.sin(theta) / theta)
    f2 = torch.where(
        small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, 2.0 * half * half / (theta * theta)
    )
    k = skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + f1[..., None, None] * k + f2[..., None, None] * (k @ k)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """(..., 4) scalar-first (w, x, y, z), any non-zero norm (normalized here) -> (..., 3, 3)."""
    w, x, y, z = quaternions.unbind(-1)
    two_s = 2.0 / (quaternions * quaternions).sum(-1)
    rows = (
        1 - two_s * (y * y + z * z),
        two_s * (x * y - z * w),
        two_s * (x * z + y * w),
        two_s * (x * y + z * w),
        1 - two_s * (x * x + z * z),
        two_s * (y * z - x * w),
        two_s * (x * z - y * w),
        two_s * (y * z + x * w),
        1 - two_s * (x * x + y * y),
    )
    return torch.stack(rows, -1).reshape(quaternions.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> unit quaternions (..., 4), scalar first with w ≥ 0.

    Shepperd's method: of the four expressions of the quaternion from the matrix, the one
    dividing by the largest of 4w², 4x², 4y², 4z² (≥ 1) is used, stable for every rotation.
    """
    m = matrices
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )  # 4w², 4x², 4y², 4z²
    absolute = torch.sqrt(squares.clamp_min(_SQRT_FLOOR))
    d21, d02, d10 = (m[..., i, j] - m[..., j, i] for i, j in ((2, 1), (0, 2), (1, 0)))
    s10, s02, s21 = (m[..., i, j] + m[..., j, i] for i, j in ((1, 0), (0, 2), (2, 1)))
    a0, a1, a2, a3 = (squares.clamp_min(0)).unbind(-1)
    # Row i: 4·q_i·q, from the i-th expression.
    candidates = torch.stack(
        [
            torch.stack([a0, d21, d02, d10], -1),
            torch.stack([d21, a1, s10, s02], -1),
            torch.stack([d02, s10, a2, s21], -1),
            torch.stack([d10, s02, s21, a3], -1),
        ],
        -2,
    ) / (2.0 * absolute[..., None])
    best = squares.argmax(-1)
    index = best[..., None, None].expand(best.shape + (1, 4))
    quaternions = torch.take_along_dim(candidates, index, dim=-2)[..., 0, :]
    return torch.where(quaternions[..., :1] < 0, -quaternions, quaternions)


def quaternion_to_rotvec(quaternions: torch.Tensor) -> torch.Tensor:
    """(..., 4) scalar first -> rotation vectors (..., 3) with angle in [0, π].

    ω = 2 atan2(|v|, w) v/|v| for q = ±(w, v) with w ≥ 0; the series 2/w − 2|v|²/(3w³) of the
    scale near the identity keeps the gradient finite there.
    """
    q = torch.where(quaternions[..., :1] < 0, -quaternions, quaternions)
    w, v = q[..., 0], q[..., 1:]
    r2 = (v * v).sum(-1)
    small = r2 < _SMALL_VECTOR2 * w * w
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    safe_w = torch.where(small, w, torch.ones_like(w))
    scale = torch.where(
        small, 2.0 / safe_w - 2.0 * r2 / (3.0 * safe_w**3), 2.0 * torch.atan2(r, w) / r
    )
    return scale[..., None] * v


def matrix_to_rotvec(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> rotation vectors (..., 3), angle in [0, π] (through the quaternion)."""
    return quaternion_to_rotvec(matrix_to_quaternion(matrices))


def gram_schmidt(six: torch.Tensor) -> torch.Tensor:
    """The continuous 6-D rotation representation (Zhou et al. 2019; roma's
    ``special_gramschmidt``): six (..., 6) = two 3-vectors a1, a2 -> R (..., 3, 3) whose
    columns are b1 = a1/|a1|, b2 = the unit part of a2 orthogonal to b1, b3 = b1 × b2.
    ``six`` must not have a1 = 0 or a2 parallel to a1. Inverse: ``matrix_to_six``."""
    a1, a2 = six[..., :3], six[..., 3:]
    b1 = a1 / torch.linalg.vector_norm(a1, dim=-1, keepdim=True)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / torch.linalg.vector_norm(a2, dim=-1, keepdim=True)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


def matrix_to_six(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, so gram_schmidt(matrix_to_six(R)) = R."""
    return torch.cat([matrices[..., :, 0], matrices[..., :, 1]], -1)


def geodesic_angle(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3, 3) -> (...,) the angle in radians, in [0, π], of first⁻¹ second.

    atan2(|vee(M − Mᵀ)|/2, (tr M − 1)/2) with M = firstᵀ second: accurate at small angles
    (where arccos of the trace loses half the digits) and finite in gradient at 0.
    """
    m = first.transpose(-1, -2) @ second
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    axis = torch.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
    )
    sin2 = (axis * axis).sum(-1)
    zero = sin2 == 0
    sin = 0.5 * torch.sqrt(torch.where(zero, torch.ones_like(sin2), sin2))
    sin = torch.where(zero, torch.zeros_like(sin), sin)
    return torch.atan2(sin, 0.5 * (trace - 1))

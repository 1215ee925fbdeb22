"""Pose conventions at file boundaries, converted in this one module.

Inside cryomotion a pose is a rotation matrix ``R`` (3, 3) that maps model coordinates
into the microscope frame, ``x_mic = R @ (x - c)``; the image is the integral along the
microscope z axis. A shift is ``(x, y)`` in Å, x along the image columns (last array
axis) and y along the rows, and the particle image is the projection translated by
``+shift``.

Files store poses differently:

- RELION: ZYZ Euler angles ``(rot, tilt, psi)`` in degrees whose matrix
  ``A = Euler_angles2matrix(rot, tilt, psi)`` is ``R`` itself; origin offsets
  ``rlnOriginXAngst/YAngst`` (Å, RELION 3.1+) or ``rlnOriginX/Y`` (pixels, RELION 3.0).
  A RELION origin is the translation that *centres* the particle image (RELION
  translates the image by ``+origin`` before comparing it with the centred projection;
  re-extraction re-centres at ``coordinate - origin``), so
  ``shift = RELION_ORIGIN_SIGN * origin`` with ``RELION_ORIGIN_SIGN = -1``.
- cryoSPARC: ``alignments3D/pose`` is a rotation vector (axis times angle, radians) whose
  Rodrigues matrix is ``R`` transposed; ``alignments3D/shift`` is in pixels with the sign
  of a RELION origin (as pyem's csparc2star and cryoDRGN's parse_pose_csparc copy it).
- The rotation centre ``c`` is where the reference model meets the box centre; see
  ``resolve_rotation_center``.
- cryoDRGN: ``poses.pkl`` holds ``R`` itself and translations in fractions of the box
  with the sign of a RELION origin (cryoDRGN's parse_pose_star stores
  ``trans = rlnOrigin / D``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from cryomotion.errors import InputError

# shift (image = projection translated by +shift) = RELION_ORIGIN_SIGN * RELION origin.
RELION_ORIGIN_SIGN = -1.0

# Below this |sin(tilt)| the Euler angles rot and psi are degenerate (gimbal lock) and
# only their sum (tilt = 0) or difference (tilt = 180) is defined.
_GIMBAL_SIN_TILT = 1e-8


def euler_to_matrix(rot, tilt, psi) -> np.ndarray:
    """RELION's ZYZ Euler angles (degrees) to rotation matrices ``R`` (..., 3, 3).

    Exactly RELION's ``Euler_angles2matrix``: ``R = Rz(psi) Ry(tilt) Rz(rot)`` with the
    rotations applied to the coordinate frame, so ``R`` maps model coordinates into the
    microscope frame. Inputs broadcast; a scalar triple gives one (3, 3) matrix.
    """
    rot, tilt, psi = np.broadcast_arrays(
        *(np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (rot, tilt, psi))
    )
    ca, sa = np.cos(rot), np.sin(rot)
    cb, sb = np.cos(tilt), np.sin(tilt)
    cg, sg = np.cos(psi), np.sin(psi)
    cc, cs = cb * ca, cb * sa
    sc, ss = sb * ca, sb * sa
    rows = (
        (cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb),
        (-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb),
        (sc, ss, cb),
    )
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation matrices (..., 3, 3) to RELION's ``(rot, tilt, psi)`` in degrees.

    ``tilt`` is in [0, 180], ``rot`` and ``psi`` in (-180, 180]. At tilt 0 or 180
    (gimbal lock) ``rot`` is set to 0 and ``psi`` carries the in-plane angle, as RELION's
    ``Euler_matrix2angles`` does. ``euler_to_matrix`` of the result equals the input.
    """
    a = np.asarray(rotations, dtype=np.float64)
    sin_tilt = np.hypot(a[..., 0, 2], a[..., 1, 2])
    regular = sin_tilt > _GIMBAL_SIN_TILT
    tilt = np.arctan2(sin_tilt, a[..., 2, 2])
    rot = np.where(regular, np.arctan2(a[..., 2, 1], a[..., 2, 0]), 0.0)
    upright = a[..., 2, 2] > 0
    psi_degenerate = np.where(
        upright,
        np.arctan2(-a[..., 1, 0], a[..., 0, 0]),
        np.arctan2(a[..., 1, 0], -a[..., 0, 0]),
    )
    psi = np.where(regular, np.arctan2(a[..., 1, 2], -a[..., 0, 2]), psi_degenerate)
    tilt = np.where(regular, tilt, np.where(upright, 0.0, np.pi))
    return np.rad2deg(rot), np.rad2deg(tilt), np.rad2deg(psi)


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) (unit axis times angle in radians) to matrices (..., 3, 3).

    Rodrigues' formula: the active rotation by |v| radians about v / |v|.
    """
    v = np.asarray(rotvec, dtype=np.float64)
    flat = Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix()
    return flat.reshape(v.shape[:-1] + (3, 3))


def matrix_to_rotvec(rotations: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to rotation vectors (..., 3), angle in [0, pi] radians."""
    a = np.asarray(rotations, dtype=np.float64)
    flat = Rotation.from_matrix(a.reshape(-1, 3, 3)).as_rotvec()
    return flat.reshape(a.shape[:-2] + (3,))


def cryosparc_pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """cryoSPARC ``alignments3D/pose`` (..., 3) rotation vectors to ``R`` (..., 3, 3).

    cryoSPARC's matrix is the transpose of RELION's ``A`` (cryoDRGN's parse_pose_csparc
    transposes it; pyem converts likewise).
    """
    return np.swapaxes(rotvec_to_matrix(pose), -1, -2)


def matrix_to_cryosparc_pose(rotations: np.ndarray) -> np.ndarray:
    """``R`` (..., 3, 3) to cryoSPARC ``alignments3D/pose`` rotation vectors (..., 3)."""
    return matrix_to_rotvec(np.swapaxes(np.asarray(rotations, dtype=np.float64), -1, -2))


def origin_to_shift(origin: np.ndarray) -> np.ndarray:
    """RELION origin offsets (..., 2) in Å to cryomotion shifts (..., 2) in Å."""
    return RELION_ORIGIN_SIGN * np.asarray(origin, dtype=np.float64)


def shift_to_origin(shifts: np.ndarray) -> np.ndarray:
    """cryomotion shifts (..., 2) in Å to RELION origin offsets (..., 2) in Å."""
    return RELION_ORIGIN_SIGN * np.asarray(shifts, dtype=np.float64)


def cryodrgn_trans_to_shift(trans: np.ndarray, box_size: int, pixel_size) -> np.ndarray:
    """cryoDRGN translations (N, 2) in fractions of the box to shifts (N, 2) in Å.

    ``pixel_size`` (Å/px) is a scalar or (N,). cryoDRGN's fraction times ``box_size``
    is the RELION origin in pixels.
    """
    scale = box_size * np.asarray(pixel_size, dtype=np.float64)
    return origin_to_shift(np.asarray(trans, dtype=np.float64) * np.expand_dims(scale, -1))


def shift_to_cryodrgn_trans(shifts: np.ndarray, box_size: int, pixel_size) -> np.ndarray:
    """Shifts (N, 2) in Å to cryoDRGN translations (N, 2) in fractions of the box."""
    scale = box_size * np.asarray(pixel_size, dtype=np.float64)
    return shift_to_origin(shifts) / np.expand_dims(scale, -1)


def resolve_rotation_center(choice: str, model, box_size: int, pixel_size: float) -> np.ndarray:
    """The rotation centre ``c`` (3,) in Å of the reference model's coordinates.

    ``choice``:

    - ``"box"``: the model sits in the frame of the consensus map it was docked into
      (coordinates from the map's corner), so ``c`` is the box centre,
      ``(box_size // 2) * pixel_size`` on each axis, about which RELION projects;
    - ``"centroid"``: the model is centred on its own atoms, ``c`` = their mean position
      (``model.coords`` (atoms, 3) Å);
    - ``"x,y,z"``: an explicit centre in Å.
    """
    text = str(choice).strip().lower()
    if text == "box":
        return np.full(3, (int(box_size) // 2) * float(pixel_size))
    if text == "centroid":
        coords = np.asarray(model.coords, dtype=np.float64).reshape(-1, 3)
        if len(coords) == 0:
            raise InputError(f"model {getattr(model, 'source', '')}: no atoms to centre on")
        return coords.mean(axis=0)
    try:
        center = np.array([float(part) for part in text.split(",")])
    except ValueError:
        center = np.empty(0)
    if center.shape != (3,) or not np.isfinite(center).all():
        raise InputError(
            f"rotation centre {choice!r}: expected 'box', 'centroid' or three numbers x,y,z in Å"
        )
    return center

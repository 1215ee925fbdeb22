"""Pose conventions: RELION Euler angles, cryoSPARC rotation vectors, origins and shifts."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.data.poses import (
    RELION_ORIGIN_SIGN,
    cryodrgn_trans_to_shift,
    cryosparc_pose_to_matrix,
    euler_to_matrix,
    matrix_to_cryosparc_pose,
    matrix_to_euler,
    matrix_to_rotvec,
    origin_to_shift,
    resolve_rotation_center,
    rotvec_to_matrix,
    shift_to_cryodrgn_trans,
    shift_to_origin,
)
from cryomotion.errors import InputError


def test_euler_matrix_is_relion_formula_and_a_rotation():
    rng = np.random.default_rng(1)
    rot, tilt, psi = rng.uniform(-180, 180, 50), rng.uniform(0, 180, 50), rng.uniform(-180, 180, 50)
    matrices = euler_to_matrix(rot, tilt, psi)
    assert matrices.shape == (50, 3, 3)
    np.testing.assert_allclose(
        matrices @ matrices.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0)
    # Independent construction: RELION's A is the transpose of the active intrinsic
    # ZYZ rotation Rz(rot) Ry(tilt) Rz(psi).
    active = Rotation.from_euler("ZYZ", np.column_stack([rot, tilt, psi]), degrees=True)
    np.testing.assert_allclose(matrices, active.as_matrix().transpose(0, 2, 1), atol=1e-12)


def test_rot_of_90_degrees_about_z_maps_model_x_to_microscope_minus_y():
    matrix = euler_to_matrix(90.0, 0.0, 0.0)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix @ [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], atol=1e-15)
    # A tilt of 90 degrees brings the model's x axis along the beam (microscope z).
    np.testing.assert_allclose(
        euler_to_matrix(0.0, 90.0, 0.0) @ [1.0, 0, 0], [0, 0, 1.0], atol=1e-15
    )


def test_euler_round_trips_for_random_rotations():
    matrices = Rotation.random(500, random_state=2).as_matrix()
    rot, tilt, psi = matrix_to_euler(matrices)
    assert np.all((tilt >= 0) & (tilt <= 180))
    np.testing.assert_allclose(euler_to_matrix(rot, tilt, psi), matrices, atol=1e-12)
    again = matrix_to_euler(euler_to_matrix(rot, tilt, psi))
    np.testing.assert_allclose(euler_to_matrix(*again), matrices, atol=1e-12)


@pytest.mark.parametrize("tilt", [0.0, 1e-10, 180.0, 180.0 - 1e-10])
def test_euler_round_trip_at_gimbal_lock(tilt):
    matrix = euler_to_matrix(37.0, tilt, -52.0)
    rot, tilt_back, psi = matrix_to_euler(matrix)
    np.testing.assert_allclose(euler_to_matrix(rot, tilt_back, psi), matrix, atol=1e-9)
    assert rot == 0.0 or abs(np.sin(np.deg2rad(tilt_back))) > 1e-9


def test_cryosparc_rotvec_of_a_known_rotation():
    # A rotation vector of +90 degrees about z is the active rotation x -> y; cryoSPARC's
    # matrix is RELION's transposed, so it is RELION's rot = 90 (frame rotation).
    pose = np.array([[0.0, 0.0, np.pi / 2]])
    np.testing.assert_allclose(rotvec_to_matrix(pose)[0] @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-15)
    np.testing.assert_allclose(
        cryosparc_pose_to_matrix(pose)[0], euler_to_matrix(90, 0, 0), atol=1e-15
    )


def test_cryosparc_pose_round_trip():
    matrices = Rotation.random(100, random_state=3).as_matrix()
    poses = matrix_to_cryosparc_pose(matrices)
    assert poses.shape == (100, 3)
    assert np.all(np.linalg.norm(poses, axis=1) <= np.pi + 1e-12)
    np.testing.assert_allclose(cryosparc_pose_to_matrix(poses), matrices, atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(matrices)), matrices, atol=1e-12)


def test_relion_origin_is_minus_the_shift():
    assert RELION_ORIGIN_SIGN == -1.0
    np.testing.assert_array_equal(origin_to_shift([[3.0, -1.0]]), [[-3.0, 1.0]])
    shifts = np.random.default_rng(4).normal(size=(10, 2))
    np.testing.assert_allclose(origin_to_shift(shift_to_origin(shifts)), shifts)


def test_cryodrgn_translation_is_the_origin_in_box_fractions():
    # trans = rlnOrigin (px) / D: 0.1 of a 100-pixel box at 2 Å/px is a 20 Å origin.
    np.testing.assert_allclose(cryodrgn_trans_to_shift([[0.1, 0.0]], 100, 2.0), [[-20.0, 0.0]])
    shifts = np.random.default_rng(5).normal(size=(10, 2))
    pixel = np.linspace(1.0, 2.0, 10)
    trans = shift_to_cryodrgn_trans(shifts, 64, pixel)
    np.testing.assert_allclose(cryodrgn_trans_to_shift(trans, 64, pixel), shifts)


def test_rotation_center_choices():
    model = SimpleNamespace(coords=np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]), source="m.pdb")
    np.testing.assert_array_equal(resolve_rotation_center("box", model, 65, 1.5), [48.0] * 3)
    np.testing.assert_array_equal(resolve_rotation_center("centroid", model, 64, 1.5), [2, 3, 4])
    np.testing.assert_array_equal(resolve_rotation_center("1,2.5,-3", model, 64, 1.5), [1, 2.5, -3])
    with pytest.raises(InputError, match="expected 'box', 'centroid' or three numbers"):
        resolve_rotation_center("middle", model, 64, 1.5)

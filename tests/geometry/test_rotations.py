import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.geometry import (
    geodesic_angle,
    gram_schmidt,
    matrix_to_quaternion,
    matrix_to_rotvec,
    matrix_to_six,
    quaternion_to_matrix,
    rotvec_to_matrix,
    skew,
)


def test_rotvec_to_matrix_matches_scipy_with_leading_dims():
    rotation = Rotation.random(24, random_state=1)
    rotvec = rotation.as_rotvec().reshape(2, 3, 4, 3)
    got = rotvec_to_matrix(torch.tensor(rotvec))
    assert got.shape == (2, 3, 4, 3, 3)
    np.testing.assert_allclose(got.numpy().reshape(24, 3, 3), rotation.as_matrix(), atol=1e-14)
    # Small angles (series branch) and float32.
    tiny = np.array([[0.0, 0.0, 0.0], [1e-5, -2e-5, 3e-6], [4e-4, 0, 3e-4], [2e-3, 1e-3, 0]])
    np.testing.assert_allclose(
        rotvec_to_matrix(torch.tensor(tiny)).numpy(),
        Rotation.from_rotvec(tiny).as_matrix(),
        atol=1e-16,
    )
    single = rotvec_to_matrix(torch.tensor(rotvec[0, 0], dtype=torch.float32))
    np.testing.assert_allclose(single.numpy(), rotation.as_matrix()[:4], atol=1e-6)


def test_matrix_to_rotvec_and_quaternions_match_scipy():
    rotvec = Rotation.random(50, random_state=2).as_rotvec()
    # Angles near π, π itself, near 0 and 0.
    axis = np.array([0.3, -0.5, 0.81]) / np.linalg.norm([0.3, -0.5, 0.81])
    rotvec = np.concatenate(
        [rotvec, [axis * (np.pi - 1e-7), axis * np.pi, axis * 1e-9, np.zeros(3), -axis * 3.0]]
    )
    rotation = Rotation.from_rotvec(rotvec)
    matrices = torch.tensor(rotation.as_matrix()).reshape(5, 11, 3, 3)
    got = matrix_to_rotvec(matrices).reshape(-1, 3).numpy()
    # At θ = π, ω and −ω are the same rotation.
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), rotation.as_matrix(),
                               atol=1e-12)  # fmt: skip
    angles = np.linalg.norm(got, axis=1)
    assert angles.max() <= np.pi + 1e-12
    regular = np.linalg.norm(rotvec, axis=1) < np.pi - 1e-3
    np.testing.assert_allclose(got[regular], rotvec[regular], atol=1e-12)
    quaternions = matrix_to_quaternion(matrices).reshape(-1, 4).numpy()
    assert (quaternions[:, 0] >= 0).all()
    expected = rotation.as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar last
    expected *= np.sign(expected[:, :1] + 1e-300)
    close = np.abs(expected[:, 0]) > 1e-6
    np.testing.assert_allclose(quaternions[close], expected[close], atol=1e-12)
    # quaternion_to_matrix normalizes and matches scipy.
    q = torch.tensor(np.random.default_rng(3).normal(size=(3, 7, 4)))
    expected = Rotation.from_quat(q.reshape(-1, 4).numpy()[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(quaternion_to_matrix(q).reshape(-1, 3, 3).numpy(), expected,
                               atol=1e-14)  # fmt: skip


def test_gram_schmidt_is_a_rotation_and_inverts_matrix_to_six():
    six = torch.randn(4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = gram_schmidt(six)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(r.transpose(-1, -2) @ r, eye.expand_as(r), atol=1e-14, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(4, 5, dtype=torch.float64))
    # First column along a1; second in the (a1, a2) plane.
    a1 = six[..., :3] / six[..., :3].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(r[..., :, 0], a1)
    torch.testing.assert_close(gram_schmidt(matrix_to_six(r)), r)


def test_geodesic_angle():
    rotvec = Rotation.random(30, random_state=4).as_rotvec()
    first = Rotation.random(30, random_state=5)
    second = first * Rotation.from_rotvec(rotvec)
    got = geodesic_angle(torch.tensor(first.as_matrix()), torch.tensor(second.as_matrix()))
    np.testing.assert_allclose(got.numpy(), np.linalg.norm(rotvec, axis=1), atol=1e-12)
    small = Rotation.from_rotvec([[1e-9, 0, 0]]).as_matrix()
    assert geodesic_angle(torch.eye(3, dtype=torch.float64)[None], torch.tensor(small)).item() == (
        pytest.approx(1e-9, rel=1e-6)
    )
    eye = torch.eye(3, dtype=torch.float64, requires_grad=True)
    angle = geodesic_angle(eye, torch.eye(3, dtype=torch.float64))
    angle.backward()
    assert angle.item() == 0 and torch.isfinite(eye.grad).all()


def test_skew_is_the_cross_product():
    v, x = torch.randn(2, 6, 3, dtype=torch.float64)
    torch.testing.assert_close((skew(v) @ x[..., None])[..., 0], torch.linalg.cross(v, x, dim=-1))


def test_gradcheck_float64():
    generator = torch.Generator().manual_seed(1)
    six = torch.randn(3, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(gram_schmidt, (six,))
    axis = torch.tensor([0.3, -0.5, 0.81], dtype=torch.float64)
    axis = axis / axis.norm()
    for rotvec in (
        torch.zeros(1, 3, dtype=torch.float64),  # series branch at 0
        torch.tensor([[1e-5, -2e-5, 1e-5]], dtype=torch.float64),
        (np.pi - 1e-3) * axis[None],  # near π
        torch.randn(2, 3, dtype=torch.float64, generator=generator),
    ):
        x = rotvec.clone().requires_grad_()
        assert torch.autograd.gradcheck(rotvec_to_matrix, (x,))
    for angle in (0.7, 1e-7, np.pi - 1e-2):
        m = rotvec_to_matrix(angle * axis[None]).clone().requires_grad_()
        assert torch.autograd.gradcheck(matrix_to_rotvec, (m,))
    at_identity = torch.eye(3, dtype=torch.float64)[None].clone().requires_grad_()
    matrix_to_rotvec(at_identity).sum().backward()
    assert torch.isfinite(at_identity.grad).all()
    q = torch.randn(4, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(quaternion_to_matrix, (q,))

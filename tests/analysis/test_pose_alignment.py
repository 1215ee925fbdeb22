"""Inferred poses against true ones up to a global rotation and a mirror."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.analysis.metrics import MIRROR, align_rotations, rotation_angles


@pytest.fixture
def truth():
    return Rotation.random(300, random_state=1).as_matrix()


def _noise(n, degrees, seed=0):
    rng = np.random.default_rng(seed)
    return Rotation.from_rotvec(rng.normal(0, np.radians(degrees), (n, 3))).as_matrix()


def test_recovers_the_global_rotation_despite_outliers(truth):
    g = Rotation.from_rotvec([0.4, -1.2, 2.0]).as_matrix()
    inferred = truth @ g @ _noise(len(truth), 2.0)
    inferred[:60] = Rotation.random(60, random_state=7).as_matrix()  # 20 % wrong poses
    errors, fitted, mirrored = align_rotations(inferred, truth)
    assert not mirrored
    assert rotation_angles(fitted[None], g[None])[0] < 1.0
    # the noise alone: a rotation vector of 2° per axis has a median angle of ~3.1°
    assert np.median(errors[60:]) == pytest.approx(3.1, abs=0.4)
    # exact poses: zero error, to numerical precision
    errors, _, _ = align_rotations(truth @ g, truth)
    assert errors.max() < 1e-5


def test_flags_a_mirrored_solution(truth):
    g = Rotation.from_rotvec([1.0, 0.2, -0.3]).as_matrix()
    inferred = MIRROR @ truth @ MIRROR @ g
    errors, _, mirrored = align_rotations(inferred, truth)
    assert mirrored and errors.max() < 1e-5
    # random poses are not aligned by anything: median error near the uniform's 126°
    errors, _, _ = align_rotations(Rotation.random(300, random_state=3).as_matrix(), truth)
    assert np.median(errors) > 90


def test_fast_pairwise_rmsd_equals_the_superposing_one():
    from cryomotion.analysis.metrics import pairwise_rmsd, pairwise_rmsd_fast

    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 40, 3))
    turned = np.einsum("nij,naj->nai", Rotation.random(12, random_state=2).as_matrix(), a)
    b = turned[::-1] + rng.normal(scale=0.3, size=a.shape) + 5.0
    np.testing.assert_allclose(pairwise_rmsd_fast(a, b, chunk=7), pairwise_rmsd(a, b), atol=1e-9)
    # a rotated, translated copy superposes exactly
    assert np.diag(pairwise_rmsd_fast(a, turned + 3.0)).max() < 1e-6

import numpy as np
from scipy.spatial.transform import Rotation

from cryomotion.structure.superpose import kabsch, rmsd, superpose


def test_recovers_a_known_rigid_motion():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(50, 3)) * 10
    rotation = Rotation.random(random_state=2).as_matrix()
    mobile = (target - 3.0) @ rotation  # inverse motion of target
    found_rotation, found_translation = kabsch(mobile, target)
    np.testing.assert_allclose(mobile @ found_rotation.T + found_translation, target, atol=1e-9)
    assert rmsd(mobile, target) < 1e-9
    assert rmsd(mobile, target, align=False) > 1.0


def test_never_returns_a_reflection():
    rng = np.random.default_rng(3)
    target = rng.normal(size=(20, 3))
    mirrored = target * np.array([1, 1, -1])
    rotation, _ = kabsch(mirrored, target)
    assert np.isclose(np.linalg.det(rotation), 1.0)


def test_batched_matches_loop():
    rng = np.random.default_rng(4)
    mobile = rng.normal(size=(3, 15, 3))
    target = rng.normal(size=(15, 3))
    batched = superpose(mobile, np.broadcast_to(target, mobile.shape))
    for i in range(3):
        np.testing.assert_allclose(batched[i], superpose(mobile[i], target), atol=1e-12)

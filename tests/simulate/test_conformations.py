import numpy as np
import pytest

from cryomotion.errors import InputError
from cryomotion.simulate.conformations import (
    frame_weights,
    lognormal_defocus,
    morph,
    uniform_rotations,
)


def test_morph_end_points_and_linearity():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 10, 3))
    frames = morph(a, b, 5)
    np.testing.assert_allclose(frames[0], a)
    np.testing.assert_allclose(frames[-1], b)
    np.testing.assert_allclose(frames[2], (a + b) / 2)


def test_distributions():
    uniform = frame_weights("uniform", 50)
    np.testing.assert_allclose(uniform, 1 / 50)
    continuous = frame_weights("continuous", 50)
    discontinuous = frame_weights("discontinuous", 50)
    for p in (continuous, discontinuous):
        assert np.isclose(p.sum(), 1.0)
        peaks = [i for i in range(1, 49) if p[i] > p[i - 1] and p[i] >= p[i + 1]]
        assert len(peaks) == 3
    # Continuous: populated everywhere between peaks; discontinuous: empty gaps.
    assert continuous.min() > 1e-3
    assert (discontinuous < 1e-4).sum() >= 10
    with pytest.raises(InputError, match="one weight per frame"):
        frame_weights("weights", 4, [1, 2, 3])


def test_uniform_rotations_are_rotations_and_uniform():
    rotations = uniform_rotations(20000, np.random.default_rng(0))
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1),
        np.broadcast_to(np.eye(3), rotations.shape),
        atol=1e-12,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    # Uniform on SO(3): the image of any fixed axis is uniform on the sphere (mean 0, <z^2> = 1/3).
    z = rotations[:, :, 2]
    assert np.abs(z.mean(0)).max() < 0.02
    assert abs((z[:, 2] ** 2).mean() - 1 / 3) < 0.01


def test_lognormal_defocus_moments():
    values = lognormal_defocus(200000, 10000.0, 3000.0, np.random.default_rng(0))
    assert abs(values.mean() - 10000) < 50 and abs(values.std() - 3000) < 50
    assert values.min() > 0

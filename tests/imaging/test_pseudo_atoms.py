"""Gaussian pseudo-atoms with per-point amplitudes (3DFlex's canonical density)."""

import numpy as np
import torch

from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.imaging.scatterers import Scatterers


def test_amplitudes_scale_the_projection_linearly_and_set_its_integral():
    box, pixel = 32, 1.5
    rng = np.random.default_rng(0)
    points = torch.as_tensor(rng.uniform(16, 32, size=(5, 3)))
    renderer = AtomRenderer(Scatterers.gaussian_points(5, 1.2), box, pixel)
    rotation = torch.eye(3, dtype=torch.float64)[None]
    a = torch.as_tensor(rng.uniform(0.5, 2.0, size=5))
    b = torch.as_tensor(rng.uniform(-1.0, 1.0, size=5))
    image_a = renderer(points, rotation, amplitudes=a)
    image_b = renderer(points, rotation, amplitudes=b)
    combined = renderer(points, rotation, amplitudes=2.0 * a - 3.0 * b)
    torch.testing.assert_close(combined, 2.0 * image_a - 3.0 * image_b, rtol=0, atol=1e-12)
    # each normalised Gaussian integrates to its amplitude: Σ pixels × pixel² = Σ a
    assert abs(float(image_a.sum()) * pixel**2 - float(a.sum())) < 1e-6 * float(a.sum())
    # per-image amplitudes (..., S) broadcast against the poses
    both = renderer(points, rotation.expand(2, 3, 3), amplitudes=torch.stack([a, b]))
    torch.testing.assert_close(both, torch.cat([image_a, image_b]), rtol=0, atol=1e-12)

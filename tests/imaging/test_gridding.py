import logging
import math

import numpy as np
import pytest
import torch
from imaging_reference import make_model, reference_image

from cryomotion.errors import InputError
from cryomotion.imaging.gridding import (
    SpreadingKernel,
    gridding_weights,
    predicted_seconds,
    project_gridding,
)
from cryomotion.imaging.projection import gram_weights, project_fourier, quadrant_form_factors
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.imaging.scatterers import Scatterers, gaussian_form_factor
from cryomotion.structure.form_factors import electron_form_factor

ELEMENTS = ("C", "N", "O", "S")


def form_factors(bead_sigma=2.0):
    """(a, b) (5, 5): the heavy elements and a coarse bead of std ``bead_sigma`` Å."""
    a, b = zip(*(electron_form_factor(e) for e in ELEMENTS), strict=True)
    bead_a, bead_b = gaussian_form_factor(bead_sigma, terms=5)
    a = np.concatenate([np.stack(a), bead_a])
    b = np.concatenate([np.stack(b), bead_b])
    return torch.as_tensor(a), torch.as_tensor(b)


def random_atoms(batch, counts, box, seed, dtype=torch.float64):
    """Positions (B, S, 2) px over the box and past its edges, amplitudes (B, S), offsets."""
    generator = torch.Generator().manual_seed(seed)
    n = sum(counts)
    positions = torch.rand(batch, n, 2, generator=generator, dtype=dtype) * (box + 4) - 2
    positions[:, :4] = torch.tensor([[0.01, box - 0.3], [box - 0.01, 0.2], [-0.49, 3.5], [0, 0]])
    amplitudes = 0.5 + torch.rand(batch, n, generator=generator, dtype=dtype)
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(counts)]))
    return positions, amplitudes, offsets


def images_and_gradients(project, weights, positions, amplitudes, offsets, box, seed):
    """Images (B, D, D) and d(Σ W·image)/d(positions, amplitudes) for a random W."""
    x = positions.detach().clone().requires_grad_()
    w = amplitudes.detach().clone().requires_grad_()
    image = torch.fft.irfft2(project(x, weights, offsets, box, w), s=(box, box))
    generator = torch.Generator().manual_seed(seed)
    pattern = torch.randn(image.shape, generator=generator, dtype=image.dtype)
    grad_x, grad_w = torch.autograd.grad((image * pattern).sum(), (x, w))
    return image.detach(), grad_x, grad_w


def relative(got, want):
    """Relative L2 distance, in double (complex128 for spectra)."""
    wide = torch.complex128 if want.is_complex() else torch.float64
    return ((got.to(wide) - want.to(wide)).norm() / want.to(wide).norm()).item()


@pytest.mark.parametrize("box, pixel_size", [(32, 1.5), (33, 1.2), (64, 1.0)])
def test_matches_direct_sum(box, pixel_size):
    a, b = form_factors()
    quadrant = quadrant_form_factors(a, b, box, pixel_size)
    positions, amplitudes, offsets = random_atoms(3, (40, 25, 25, 6, 20), box, seed=box)
    direct = images_and_gradients(
        project_fourier, gram_weights(quadrant, box), positions, amplitudes, offsets, box, 1
    )
    gridded = images_and_gradients(
        project_gridding, gridding_weights(quadrant, box), positions, amplitudes, offsets, box, 1
    )
    image_error, position_error, amplitude_error = map(relative, gridded, direct)
    assert image_error < 3e-4
    assert position_error < 2e-3
    assert amplitude_error < 3e-4


def test_spectrum_equals_direct_including_nyquist():
    box = 16
    a, b = form_factors()
    quadrant = quadrant_form_factors(a, b, box, 1.0)
    positions, amplitudes, offsets = random_atoms(2, (3, 3, 3, 3, 3), box, seed=5)
    want = project_fourier(positions, gram_weights(quadrant, box), offsets, box, amplitudes)
    got = project_gridding(positions, gridding_weights(quadrant, box), offsets, box, amplitudes)
    assert got.shape == want.shape == (2, box, box // 2 + 1)
    scale = want.abs().max()
    assert ((got - want).abs() / scale).max() < 1e-4
    # Nyquist row and column: the symmetric (averaged) convention, real along both axes' ends.
    assert ((got[:, box // 2] - want[:, box // 2]).abs() / scale).max() < 1e-4
    assert ((got[:, :, -1] - want[:, :, -1]).abs() / scale).max() < 1e-4


def test_error_falls_tenfold_per_kernel_point():
    box = 32
    a, b = form_factors()
    quadrant = quadrant_form_factors(a, b, box, 1.3)
    positions, amplitudes, offsets = random_atoms(2, (30, 30, 30, 5, 10), box, seed=3)
    want = project_fourier(positions, gram_weights(quadrant, box), offsets, box, amplitudes)
    errors = []
    for width in (4, 5, 6, 7):
        kernel = SpreadingKernel(width)
        weights = gridding_weights(quadrant, box, kernel)
        got = project_gridding(positions, weights, offsets, box, amplitudes, kernel)
        errors.append(relative(got, want))
    assert errors[0] < 2e-3
    for coarser, finer in zip(errors, errors[1:], strict=False):
        assert finer < coarser / 5


def test_backward_is_the_adjoint():
    box = 10
    a, b = form_factors()
    quadrant = quadrant_form_factors(a, b, box, 1.0)
    positions, amplitudes, offsets = random_atoms(2, (2, 1, 1, 1, 2), box, seed=11)
    weights = gridding_weights(quadrant, box)

    def image(x, w):
        return torch.fft.irfft2(project_gridding(x, weights, offsets, box, w), s=(box, box))

    assert torch.autograd.gradcheck(
        image, (positions.requires_grad_(), amplitudes.requires_grad_()), eps=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("element", ["C", "S", "bead"])
def test_single_atom_integrates_to_its_scattering_total(element):
    box, pixel_size = 32, 1.0
    if element == "bead":
        a, b = gaussian_form_factor(2.0, terms=5)
        scatterers = Scatterers(a, b, [0])
        total = 1.0
    else:
        a, b = electron_form_factor(element)
        scatterers = Scatterers(np.asarray(a)[None], np.asarray(b)[None], [0])
        total = float(np.sum(a))
    renderer = AtomRenderer(scatterers, box, pixel_size, projection="gridding")
    coords = torch.tensor([[17.3, 14.6, 15.1]])
    image = renderer(coords, torch.eye(3)[None])
    # To the kernel's accuracy (the aliases of φ̂ at the zero frequency, ~1e-5 at w = 5).
    assert image.sum().item() * pixel_size**2 == pytest.approx(total, rel=1e-4)


def test_renderer_against_independent_reference(device):
    """AdK-like heavy atoms near the edge, float32 gridding vs the NumPy float64 definition."""
    box, pixel_size = 48, 1.5
    generator = np.random.default_rng(2)
    n = 120
    coords = generator.uniform(0, box * pixel_size, size=(n, 3))
    coords[:3, :2] = [[0.1, 71.5], [71.9, 0.4], [36.0, 36.0]]
    elements = generator.choice(ELEMENTS, size=n)
    model = make_model(coords, elements)
    renderer = AtomRenderer.from_model(model, box, pixel_size, projection="gridding").to(device)
    assert renderer.projection == "gridding"
    x = torch.tensor(coords, dtype=torch.float32, device=device)
    image = renderer(x, torch.eye(3, device=device)[None])[0]
    center = (box // 2) * pixel_size
    want = reference_image(coords[:, :2] - center, elements, box, pixel_size)
    assert image.device.type == device.type
    assert relative(image.cpu(), torch.as_tensor(want)) < 1e-3


def test_float32_renderer_gradients_close_to_exact(device):
    box, pixel_size = 64, 1.5
    generator = np.random.default_rng(4)
    coords = generator.uniform(20, 76, size=(300, 3))
    model = make_model(coords, generator.choice(ELEMENTS, size=300))
    rotation = torch.tensor(
        [[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]], dtype=torch.float64
    )[None]
    pattern = torch.randn(1, box, box, dtype=torch.float64)
    results = {}
    for projection, dtype in (("direct", torch.float64), ("gridding", torch.float32)):
        renderer = AtomRenderer.from_model(model, box, pixel_size, projection=projection)
        renderer = renderer.to(device)
        x = torch.tensor(coords, dtype=dtype, device=device, requires_grad=True)
        image = renderer(x, rotation.to(device, dtype), torch.tensor([[1.3, -0.4]], device=device))
        (image * pattern.to(device, dtype)).sum().backward()
        results[projection] = (image.detach().cpu(), x.grad.cpu())
    assert relative(results["gridding"][0], results["direct"][0]) < 1e-3
    assert relative(results["gridding"][1], results["direct"][1]) < 1e-2


def test_auto_picks_by_size_and_logs_it(caplog):
    a, b = gaussian_form_factor(2.0)
    assert predicted_seconds("direct", 10, 1, 16) < predicted_seconds("gridding", 10, 1, 16)
    assert predicted_seconds("gridding", 10**5, 5, 512) < predicted_seconds("direct", 10**5, 5, 512)
    with caplog.at_level(logging.INFO, logger="cryomotion.imaging.renderer"):
        tiny = AtomRenderer(Scatterers(a, b, np.zeros(10, dtype=int)), 16, 2.0)
        huge = AtomRenderer(Scatterers(a, b, np.zeros(10**5, dtype=int)), 512, 1.0)
    assert tiny.projection == "direct" and huge.projection == "gridding"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("projection direct (auto") for m in messages)
    assert any(m.startswith("projection gridding (auto") for m in messages)


def test_auto_keeps_float64_exact():
    """ "auto" grids float32 inputs only: float64 images stay the exact direct sum."""
    box, pixel_size = 64, 1.5
    generator = np.random.default_rng(6)
    coords = generator.uniform(20, 76, size=(2000, 3))
    model = make_model(coords, generator.choice(ELEMENTS, size=2000))
    auto = AtomRenderer.from_model(model, box, pixel_size)
    direct = AtomRenderer.from_model(model, box, pixel_size, projection="direct")
    assert auto.projection == "gridding"
    x = torch.tensor(coords)
    rotation = torch.eye(3, dtype=torch.float64)[None]
    assert torch.equal(auto(x, rotation), direct(x, rotation))


def test_unknown_projection_is_an_input_error():
    a, b = gaussian_form_factor(2.0)
    with pytest.raises(InputError, match="projection 'nufft'"):
        AtomRenderer(Scatterers(a, b, [0]), 16, 1.0, projection="nufft")


def test_kernel_transform_matches_its_sum():
    """φ̂ by quadrature against the Poisson sum Σ_j φ(j - u) = φ̂(0) + aliases (~1e-5 at
    w = 5) for any offset u."""
    kernel = SpreadingKernel(5)
    half = kernel.width / 2
    for offset in (0.0, 0.3, 0.5):
        x = np.arange(-3, 4) - offset
        z = np.clip(1 - (x / half) ** 2, 0, None)
        values = np.where(z > 0, np.exp(kernel.beta * (np.sqrt(z) - 1)), 0.0)
        assert values.sum() == pytest.approx(kernel.fourier(np.array([0.0]))[0], rel=1e-4)
    assert math.isclose(kernel.beta, 2.30 * 5)

import math

import numpy as np
import pytest
import torch
from imaging_reference import make_model, reference_image
from scipy.spatial.transform import Rotation

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import ctf_image
from cryomotion.imaging.fourier import fourier_crop, fourier_shift
from cryomotion.imaging.pose import Pose
from cryomotion.imaging.renderer import AtomRenderer, residue_beads
from cryomotion.imaging.scatterers import Scatterers
from cryomotion.structure.form_factors import electron_form_factor
from cryomotion.structure.io import read_model


@pytest.fixture(scope="module")
def adk(adk_open_path):
    return read_model(adk_open_path)


def centred(model, box, pixel_size):
    """AdK coordinates moved so that its centroid sits on the default rotation centre."""
    return model.coords - model.coords.mean(0) + (box // 2) * pixel_size


def rotations(n, seed=0, dtype=torch.float64):
    return torch.as_tensor(Rotation.random(n, random_state=seed).as_matrix(), dtype=dtype)


def identity(n=1, dtype=torch.float64):
    return torch.eye(3, dtype=dtype).expand(n, 3, 3)


@pytest.mark.parametrize("element", ["C", "S", "FE"])
def test_atom_integrates_to_its_scattering_total(element, device):
    box, pixel_size = 64, 1.0
    center = (box // 2) * pixel_size
    model = make_model([[center + 0.3, center - 0.7, center + 2.0]], [element])
    renderer = AtomRenderer.from_model(model, box, pixel_size).to(device)
    coords = torch.tensor(model.coords, dtype=torch.float32, device=device)
    image = renderer(coords, identity(dtype=torch.float32).to(device))
    total = image.sum().item() * pixel_size**2
    assert total == pytest.approx(electron_form_factor(element)[0].sum(), rel=1e-4)


@pytest.mark.parametrize("box", [24, 25])
def test_matches_exact_band_limited_reference(box):
    pixel_size = 1.3
    rng = np.random.default_rng(1)
    elements = ["C", "N", "O", "S", "C", "C"]
    center = np.full(3, (box // 2) * pixel_size)
    coords = center + rng.uniform(-8, 8, (len(elements), 3))
    rotation = Rotation.random(random_state=2).as_matrix()
    shift = np.array([1.7, -0.4])
    renderer = AtomRenderer.from_model(make_model(coords, elements), box, pixel_size)
    image = renderer(torch.tensor(coords), torch.tensor(rotation)[None], torch.tensor(shift)[None])[
        0
    ].numpy()
    xy = ((coords - center) @ rotation.T)[:, :2] + shift
    expected = reference_image(xy, elements, box, pixel_size)
    assert np.abs(image - expected).max() < 1e-10 * np.abs(expected).max()


def test_projected_profile_and_width_match_the_form_factor():
    # Carbon blurred by B = 60 Å²: sampling at 0.5 Å/px resolves it, so pixel values equal the
    # real-space projection Σ a_i (4π/b_i) exp(-4π² r²/b_i) and ⟨r²⟩ = Σ a_i b_i / (4π² Σ a_i).
    a, b = electron_form_factor("C")
    b = b + 60.0
    box, pixel_size = 64, 0.5
    renderer = AtomRenderer(Scatterers(a[None], b[None], [0]), box, pixel_size)
    center = (box // 2) * pixel_size
    image = renderer(torch.full((1, 3), center, dtype=torch.float64), identity())[0].numpy()
    x = (np.arange(box) - box // 2) * pixel_size
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    analytic = (
        a[:, None, None]
        * 4
        * np.pi
        / b[:, None, None]
        * np.exp(-4 * np.pi**2 * r2 / b[:, None, None])
    ).sum(0)
    assert np.abs(image - analytic).max() < 1e-6 * analytic.max()
    second_moment = (image * r2).sum() / image.sum()
    assert second_moment == pytest.approx((a * b).sum() / (4 * np.pi**2 * a.sum()), rel=1e-6)


def test_origin_and_rotation_convention(device):
    box, pixel_size = 32, 1.0
    c = (box // 2) * pixel_size
    model = make_model([[c, c, c], [c + 6.0, c, c], [c, c, c + 6.0]], ["S", "S", "S"])
    renderer = AtomRenderer.from_model(model, box, pixel_size).to(device)
    coords = torch.tensor(model.coords, device=device)
    rot_z90 = torch.tensor(
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    for atom, rotation, expected in (
        (0, torch.eye(3, dtype=torch.float64), (16, 16)),  # rotation centre → pixel (D//2, D//2)
        (1, torch.eye(3, dtype=torch.float64), (16, 22)),  # +x → columns
        (1, rot_z90, (22, 16)),  # x_mic = R (x - c) = +y → rows
        (2, torch.eye(3, dtype=torch.float64), (16, 16)),  # z is the beam direction
    ):
        amplitudes = torch.zeros(3, dtype=torch.float64, device=device)
        amplitudes[atom] = 1
        image = renderer(coords, rotation[None].to(device), amplitudes=amplitudes)[0]
        assert divmod(int(image.argmax()), box) == expected


def test_rotating_the_model_equals_rendering_with_the_pose(adk):
    box, pixel_size = 48, 2.0
    coords = torch.tensor(centred(adk, box, pixel_size))
    renderer = AtomRenderer.from_model(adk, box, pixel_size)
    rotation = rotations(3, seed=4)
    c = renderer.rotation_center.double()
    moved = torch.einsum("bij,nj->bni", rotation, coords - c) + c
    posed = renderer(coords, rotation)
    rotated = renderer(moved, identity(3))
    assert torch.allclose(posed, rotated, atol=1e-10 * posed.abs().max().item())


def test_shifts(adk, device):
    pixel_size = 1.5
    rotation = rotations(2, seed=5).to(device)
    integer = torch.tensor([[3.0, -2.0], [-5.0, 4.0]], dtype=torch.float64, device=device)
    fraction = torch.tensor([[0.37, -1.21], [2.6, 0.05]], dtype=torch.float64, device=device)
    for box in (40, 39):
        renderer = AtomRenderer.from_model(adk, box, pixel_size).to(device)
        coords = torch.tensor(centred(adk, box, pixel_size), device=device)
        unshifted = renderer(coords, rotation)
        shifted = renderer(coords, rotation, integer * pixel_size)
        for i, (sx, sy) in enumerate(integer.long().tolist()):
            rolled = torch.roll(unshifted[i], shifts=(sy, sx), dims=(0, 1))
            assert torch.allclose(shifted[i], rolled, atol=1e-10)
        if box % 2:  # no Nyquist term: a sub-pixel Fourier shift is exact
            expected = fourier_shift(unshifted, fraction, pixel_size)
            assert torch.allclose(renderer(coords, rotation, fraction), expected, atol=1e-10)


def test_fourier_output_and_ctf(adk):
    box, pixel_size = 32, 2.5
    renderer = AtomRenderer.from_model(adk, box, pixel_size)
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(2, seed=6)
    image = renderer(coords, rotation)
    spectrum = renderer.fourier(coords, rotation)
    assert spectrum.shape == (2, box, box // 2 + 1) and spectrum.dtype == torch.complex128
    assert torch.allclose(torch.fft.rfft2(image), spectrum, atol=1e-10)
    ctf = torch.tensor(
        [[15000.0, 16000.0, 30.0, 300.0, 2.7, 0.1, 0.0, 50.0]] * 2, dtype=torch.float64
    )
    ctf[1, 0:2] = 25000.0
    with_ctf = renderer(coords, rotation, ctf=ctf)
    expected = torch.fft.irfft2(spectrum * ctf_image(ctf, box, pixel_size), s=(box, box))
    assert torch.allclose(with_ctf, expected, atol=1e-12)
    # RELION's sign: CTF(0) = +w, so the particle stays positive (white) at low frequency.
    assert with_ctf.sum() > 0


def test_gradcheck_coords_and_shifts():
    box, pixel_size = 16, 1.2
    c = (box // 2) * pixel_size
    model = make_model(
        [[c + 1.0, c - 0.5, c], [c - 2.0, c + 1.5, c + 1.0], [c, c + 2.5, c - 1.0]], ["C", "O", "N"]
    )
    renderer = AtomRenderer.from_model(model, box, pixel_size)
    coords = torch.tensor(model.coords, requires_grad=True)
    shifts = torch.tensor([[0.4, -0.3], [1.1, 0.2]], dtype=torch.float64, requires_grad=True)
    rotation = rotations(2, seed=7)
    # Every input direction, through 8 fixed random functionals of the images (keeps the
    # number of backward passes small).
    functionals = torch.randn(
        box * box, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    assert torch.autograd.gradcheck(
        lambda x, s: renderer(x, rotation, s).flatten(1) @ functionals, (coords, shifts)
    )
    assert torch.autograd.gradcheck(
        lambda x, s: renderer(x, rotation, s), (coords, shifts), fast_mode=True
    )
    ctf = torch.tensor(
        [[9000.0, 10000.0, 20.0, 300.0, 2.7, 0.1, 0.0, 10.0]] * 2, dtype=torch.float64
    )
    amplitudes = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: renderer(coords.detach(), rotation, amplitudes=a).flatten(1) @ functionals,
        (amplitudes,),
    )
    rotation.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, r, a: renderer(x, r, ctf=ctf, amplitudes=a),
        (coords, rotation, amplitudes),
        fast_mode=True,
    )


def test_batch_equals_loop(adk, device):
    box, pixel_size = 32, 2.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size).to(device)
    base = torch.tensor(centred(adk, box, pixel_size), dtype=torch.float32, device=device)
    coords = base + torch.randn(4, *base.shape, device=device)
    rotation = rotations(4, seed=8, dtype=torch.float32).to(device)
    shifts = torch.randn(4, 2, device=device)
    ctf = torch.tensor([[15000.0, 16000.0, 30.0, 300.0, 2.7, 0.1, 0.0, 0.0]] * 4, device=device)
    batch = renderer(coords, rotation, shifts, ctf)
    assert batch.dtype == torch.float32 and batch.device.type == device.type
    for i in range(4):
        single = renderer(coords[i : i + 1], rotation[i : i + 1], shifts[i : i + 1], ctf[i : i + 1])
        assert torch.allclose(batch[i], single[0], atol=1e-5 * batch.abs().max().item())


@pytest.mark.parametrize(
    "projection, image_tolerance, gradient_tolerance",
    [("direct", 1e-5, 1e-4), ("auto", 1e-3, 1e-2)],  # auto: gridding in float32 at this size
)
def test_float32_close_to_float64(adk, projection, image_tolerance, gradient_tolerance):
    box, pixel_size = 64, 1.5
    renderer = AtomRenderer.from_model(adk, box, pixel_size, projection=projection)
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(2, seed=9)
    weights = torch.randn(2, box, box, dtype=torch.float64)
    results = []
    for dtype in (torch.float64, torch.float32):
        x = coords.to(dtype).detach().requires_grad_()
        image = renderer(x, rotation.to(dtype))
        (image * weights.to(dtype)).sum().backward()
        results.append((image.double(), x.grad.double()))
    (image64, grad64), (image32, grad32) = results
    assert (image32 - image64).norm() / image64.norm() < image_tolerance
    assert (grad32 - grad64).norm() / grad64.norm() < gradient_tolerance


def test_fourier_crop_equals_coarser_rendering(adk):
    fine = AtomRenderer.from_model(adk, 96, 1.0)
    coarse = AtomRenderer.from_model(adk, 48, 2.0)
    assert_images_are_the_crop(fine, coarse, adk, [[1.3, -2.2], [0.0, 0.7]], seed=10)


def assert_images_are_the_crop(fine, coarse, adk, shifts, seed):
    """``coarse`` (48 px at 2 Å) draws the Fourier crop of ``fine``'s images (96 px at 1 Å)
    of AdK in two poses with ``shifts`` (Å)."""
    coords = torch.tensor(centred(adk, 96, 1.0))
    rotation = rotations(2, seed=seed)
    shifts = torch.tensor(shifts, dtype=torch.float64)
    cropped = fourier_crop(fine(coords, rotation, shifts), 48)
    direct = coarse(coords, rotation, shifts)
    assert torch.allclose(cropped, direct, atol=1e-10 * direct.abs().max().item())


def test_coarse_mode(adk, device):
    box, pixel_size = 48, 2.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size, coarse=True, bead_sigma=2.0).to(device)
    assert renderer.n_scatterers == adk.n_residues
    coords = torch.tensor(centred(adk, box, pixel_size), device=device)
    rotation = rotations(2, seed=11).to(device)
    image = renderer(coords, rotation)
    totals = np.array([electron_form_factor(e)[0].sum() for e in adk.elements]).sum()
    assert image.sum((1, 2)).cpu().numpy() * pixel_size**2 == pytest.approx([totals] * 2, rel=1e-9)
    # Beads are normalized Gaussians of σ = 2 Å at the Cα, weighted by the residue's f_e(0).
    ca = centred(adk, box, pixel_size)[adk.ca_index]
    xy = ((ca - renderer.rotation_center.double().numpy()) @ rotation[0].cpu().numpy().T)[:, :2]
    residue_totals = np.bincount(
        adk.residue_index, [electron_form_factor(e)[0].sum() for e in adk.elements]
    )
    gaussian = ([1.0], [8 * math.pi**2 * 4.0])
    expected = reference_image(xy, [gaussian] * len(xy), box, pixel_size, weights=residue_totals)
    assert np.abs(image[0].cpu().numpy() - expected).max() < 1e-10 * expected.max()


def test_residue_beads_fall_back_to_the_atom_nearest_the_centroid():
    model = make_model(
        [[0, 0, 0], [1.5, 0, 0], [3, 0, 0], [10, 0, 0], [11, 0, 0], [12.2, 0, 0]],
        ["N", "C", "C", "C", "O", "C"],
        residue_numbers=[1, 1, 1, 2, 2, 2],
        atom_names=["N", "CA", "C", "C1", "O1", "C2"],
    )
    assert residue_beads(model).tolist() == [1, 4]


def test_input_errors(adk):
    with pytest.raises(InputError):
        AtomRenderer.from_model(adk.select(np.zeros(adk.n_atoms, dtype=bool)), 32, 1.0)
    with pytest.raises(InputError):
        AtomRenderer.from_model(make_model([[0.0, 0.0, 0.0]], ["XX"]), 32, 1.0)
    with pytest.raises(InputError):
        AtomRenderer.from_model(adk, 32, 0.0)
    renderer = AtomRenderer.from_model(adk, 16, 4.0)
    with pytest.raises(ValueError):
        renderer(torch.zeros(10, 3), identity(1, torch.float32))


def test_blocking_over_images_and_atoms_does_not_change_results(adk, monkeypatch):
    from cryomotion.imaging import projection

    box, pixel_size = 32, 2.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size)
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(3, seed=12)
    weights = torch.randn(3, box, box, dtype=torch.float64)
    amplitudes = torch.rand(adk.n_atoms, dtype=torch.float64)

    def run():
        x = coords.clone().requires_grad_()
        a = amplitudes.clone().requires_grad_()
        (renderer(x, rotation, amplitudes=a) * weights).sum().backward()
        return renderer(x, rotation, amplitudes=a).detach(), x.grad, a.grad

    whole = run()
    # Blocks of 10 atoms in one image: many blocks per type, types split across blocks.
    monkeypatch.setattr(projection, "_CPU_CHUNK_BYTES_PER_THREAD", 10 * 4 * (box // 2 + 1) * 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert len(projection._chunks(renderer.type_offsets, 3, box // 2 + 1, coords)) > 3 * 150
    blocked = run()
    for got, expected in zip(blocked, whole):
        assert torch.allclose(got, expected, atol=1e-12 * expected.abs().max().item())


def test_broadcast_render_equals_the_flattened_loop(adk, device):
    # Points (B, S1, 1, P, 3) against poses (B, S1, S2) and a CTF per image (B, 1, 1, 8).
    box, pixel_size = 24, 3.0
    b, s1, s2 = 2, 3, 2
    renderer = AtomRenderer.from_model(adk, box, pixel_size, coarse=True).to(device)
    generator = torch.Generator().manual_seed(13)
    base = torch.tensor(centred(adk, box, pixel_size))
    coords = base + torch.randn(b, s1, 1, *base.shape, dtype=torch.float64, generator=generator)
    rotation = rotations(b * s1 * s2, seed=13).reshape(b, s1, s2, 3, 3)
    shifts = torch.randn(b, s1, s2, 2, dtype=torch.float64, generator=generator)
    ctf = torch.tensor([[15000.0, 16000.0, 30.0, 300.0, 2.7, 0.1, 0.0, 20.0]] * b)
    ctf[1, :2] = 22000.0
    ctf = ctf.double()[:, None, None, :]
    amplitudes = torch.rand(s2, adk.n_residues, dtype=torch.float64, generator=generator) + 0.5
    coords, rotation, shifts, ctf, amplitudes = (
        t.to(device) for t in (coords, rotation, shifts, ctf, amplitudes)
    )
    pose = Pose(rotation, shifts)
    images = renderer(coords, pose, ctf=ctf, amplitudes=amplitudes)
    assert images.shape == (b, s1, s2, box, box)
    # The same positionally (rotations, shifts) and as a band-limited spectrum.
    assert torch.equal(renderer(coords, rotation, shifts, ctf, amplitudes), images)
    for i in range(b):
        for j in range(s1):
            for k in range(s2):
                single = renderer(
                    coords[i, j, 0],
                    rotation[i, j, k][None],
                    shifts[i, j, k][None],
                    ctf[i, 0, 0][None],
                    amplitudes[k],
                )[0]
                torch.testing.assert_close(images[i, j, k], single, atol=1e-12, rtol=0)
    # Gradients flow to every broadcast input.
    x = coords.clone().requires_grad_()
    r = rotation.clone().requires_grad_()
    renderer(x, Pose(r, shifts), ctf=ctf).square().sum().backward()
    assert x.grad.shape == coords.shape and r.grad.shape == rotation.shape
    assert x.grad.abs().sum() > 0 and r.grad.abs().sum() > 0


def test_ctf_is_computed_once_per_ctf_row(adk, monkeypatch):
    from cryomotion.imaging import renderer as renderer_module

    seen = []
    original = renderer_module.compute_ctf

    def spy(params, freq_x, freq_y):
        seen.append(tuple(params.shape))
        return original(params, freq_x, freq_y)

    monkeypatch.setattr(renderer_module, "compute_ctf", spy)
    box, pixel_size = 16, 4.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size, coarse=True)
    coords = torch.tensor(centred(adk, box, pixel_size))
    pose = Pose(rotations(12, seed=14).reshape(3, 4, 3, 3), torch.zeros(3, 4, 2).double())
    ctf = torch.tensor([[15000.0, 16000.0, 30.0, 300.0, 2.7, 0.1, 0.0, 0.0]] * 3).double()
    images = renderer(coords, pose, ctf=ctf[:, None])
    assert seen == [(3, 1, 8)] and images.shape == (3, 4, box, box)
    flat = renderer(coords, pose.flatten(), ctf=ctf[:, None].expand(3, 4, 8).reshape(12, 8))
    torch.testing.assert_close(images.reshape(12, box, box), flat, atol=1e-12, rtol=0)


def test_shared_and_unbatched_inputs(adk):
    box, pixel_size = 16, 4.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size)
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(3, seed=15)
    batch = renderer(coords, rotation)
    one = renderer(coords, rotation[1])  # no batch dimension at all
    assert one.shape == (box, box)
    torch.testing.assert_close(one, batch[1], atol=1e-12, rtol=0)
    # A single pose broadcast over a batch of models.
    models = coords + torch.randn(3, *coords.shape, dtype=torch.float64)
    posed = renderer(models, Pose.from_rotations(rotation[:1]))
    for i in range(3):
        expected = renderer(models[i], rotation[0])
        torch.testing.assert_close(posed[i], expected, atol=1e-12, rtol=0)
    with pytest.raises(ValueError):
        renderer(models, rotations(2, seed=16))  # 3 models, 2 poses
    with pytest.raises(TypeError):
        renderer(coords, Pose.from_rotations(rotation), torch.zeros(3, 2).double())


def test_max_frequency_zeroes_the_spectrum_beyond_the_band(adk):
    box, pixel_size = 32, 2.0
    renderer = AtomRenderer.from_model(adk, box, pixel_size)
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(2, seed=17)
    ctf = torch.tensor([[15000.0, 16000.0, 30.0, 300.0, 2.7, 0.1, 0.0, 0.0]] * 2).double()
    full = renderer.fourier(coords, rotation, ctf=ctf)
    limit = 0.1  # 1/Å, below Nyquist (0.25)
    band = renderer.fourier(coords, rotation, ctf=ctf, max_frequency=limit)
    q = torch.sqrt(renderer.freq_x**2 + renderer.freq_y**2)
    inside = q <= limit
    assert torch.equal(band[:, inside], full[:, inside])
    assert (band[:, ~inside] == 0).all() and (full[:, ~inside] != 0).any()
    image = renderer(coords, rotation, max_frequency=limit)
    expected = torch.fft.irfft2(renderer.fourier(coords, rotation) * inside, s=(box, box))
    torch.testing.assert_close(image, expected, atol=1e-12, rtol=0)


def test_scatterers_values_build_the_same_renderers(adk):
    box, pixel_size = 24, 2.5
    coords = torch.tensor(centred(adk, box, pixel_size))
    rotation = rotations(2, seed=18)
    for coarse, scatterers in (
        (False, Scatterers.atoms(adk)),
        (True, Scatterers.residue_beads(adk, 2.0)),
    ):
        expected = AtomRenderer.from_model(adk, box, pixel_size, coarse=coarse)(coords, rotation)
        got = AtomRenderer(scatterers, box, pixel_size)(coords, rotation)
        assert torch.equal(got, expected)
    beads = Scatterers.residue_beads(adk, 2.0)
    assert beads.n_scatterers == adk.n_residues and beads.min_points <= adk.n_atoms
    assert (beads.gather_index == residue_beads(adk)).all()


def test_gaussian_points_are_unit_gaussians():
    box, pixel_size, sigma = 64, 0.5, 1.5
    points = Scatterers.gaussian_points(2, sigma)
    assert points.n_scatterers == 2 and points.gather_index is None and points.weights is None
    renderer = AtomRenderer(points, box, pixel_size)
    center = (box // 2) * pixel_size
    coords = torch.tensor([[center, center, center], [center + 5.0, center, center]])
    amplitudes = torch.tensor([2.0, 0.0], dtype=torch.float64)
    image = renderer(coords, identity(1), amplitudes=amplitudes)[0].numpy()
    x = (np.arange(box) - box // 2) * pixel_size
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    analytic = 2.0 * np.exp(-r2 / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    assert np.abs(image - analytic).max() < 1e-6 * analytic.max()
    with pytest.raises(InputError):
        Scatterers.gaussian_points(3, 0.0)
    with pytest.raises(TypeError):
        AtomRenderer(np.ones((1, 5)), box, pixel_size)


def test_pose_helpers():
    pose = Pose(rotations(6, seed=19).reshape(2, 3, 3, 3), torch.zeros(1, 3, 2).double())
    assert pose.batch_shape == (2, 3)
    flat = pose.flatten()
    assert flat.rotations.shape == (6, 3, 3) and flat.shifts.shape == (6, 2)
    back = flat.unflatten((2, 3))
    assert torch.equal(back.rotations, pose.rotations)
    assert pose.select(1).rotations.shape == (3, 3, 3) and pose.select((1, 2)).shifts.shape == (2,)
    assert pose.unsqueeze(-1).batch_shape == (2, 3, 1)
    assert pose.to(torch.float32).rotations.dtype == torch.float32
    rotations_, shifts_ = Pose.identity((4,))
    assert torch.equal(rotations_, torch.eye(3).expand(4, 3, 3)) and (shifts_ == 0).all()
    with pytest.raises(ValueError):
        Pose(torch.zeros(2, 3, 3), torch.zeros(3, 2)).check()


def test_a_renderer_at_another_box_draws_the_same_object(adk):
    """``at_box``: the same scatterers and rotation centre on a coarser grid, which equals
    the Fourier crop of the finer rendering."""
    fine = AtomRenderer.from_model(adk, 96, 1.0, rotation_center=[46.0, 50.0, 48.0])
    coarse = fine.at_box(48, 2.0)
    assert (coarse.box, coarse.pixel_size, coarse.requested_projection) == (48, 2.0, "auto")
    assert torch.equal(coarse.rotation_center, fine.rotation_center)
    assert_images_are_the_crop(fine, coarse, adk, [[0.4, -1.2], [2.0, 0.3]], seed=11)

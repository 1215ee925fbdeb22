"""The autoencoder wiring: a fresh model renders the reference at the given shifts."""

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.autoencoder import MotionAutoencoder
from cryomotion.models.encoder import ImageEncoder
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model

BOX, PIXEL_SIZE = 24, 4.0


@pytest.fixture(scope="module")
def parts(adk_open_path):
    model = read_model(adk_open_path)
    model = model.with_coords(model.coords - model.coords.mean(0) + (BOX // 2) * PIXEL_SIZE)
    modes = np.random.default_rng(0).normal(size=(3, model.n_atoms, 3))
    modes /= np.linalg.norm(modes.reshape(3, -1), axis=1)[:, None, None]
    return model, modes


def make(parts, d=3, mixed_precision=False):
    model, modes = parts
    torch.manual_seed(0)
    return MotionAutoencoder(
        ImageEncoder(BOX, {"shifts": 2, "latents": d}, width=0.25),
        NormalModeDeformation(model.coords, modes[:d]),
        AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        mixed_precision=mixed_precision,
    )


def test_fresh_model_renders_the_reference_at_the_given_shifts(parts):
    model, _ = parts
    autoencoder = make(parts)
    rotations = torch.as_tensor(uniform_rotations(4, np.random.default_rng(1)), dtype=torch.float32)
    shifts = torch.randn(4, 2)
    ctf = torch.tensor([[10000.0, 10000.0, 0, 300, 2.7, 0.1, 0, 0]]).expand(4, 8)
    images = torch.randn(4, BOX, BOX)
    output = autoencoder(images, rotations, shifts, ctf)
    torch.testing.assert_close(output.encoded.shifts, shifts)
    assert torch.equal(output.encoded.latents, torch.zeros(4, 3))
    expected = autoencoder.renderer(
        torch.tensor(model.coords, dtype=torch.float32), rotations, shifts, ctf
    )
    torch.testing.assert_close(output.images, expected, rtol=1e-4, atol=1e-5)
    assert output.regularization == {}


def test_latent_head_scaled_to_angstrom_rms(parts):
    autoencoder = make(parts)
    head = autoencoder.encoder.heads["latents"].mlp[-1]
    torch.nn.init.constant_(head.bias, 1.0)
    latents = autoencoder.encode(torch.randn(2, BOX, BOX), torch.zeros(2, 2)).latents
    torch.testing.assert_close(latents, torch.full((2, 3), np.sqrt(parts[0].n_atoms)))


def test_rigid_and_mixed_precision_on_cpu(parts):
    rigid = make(parts, d=0, mixed_precision=True)  # autocast applies on CUDA only
    output = rigid(torch.randn(2, BOX, BOX), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 2), None)
    assert output.encoded.latents.shape == (2, 0)
    assert output.images.dtype == torch.float32
    with pytest.raises(ValueError, match="do not match"):
        MotionAutoencoder(
            ImageEncoder(BOX, {"shifts": 2, "latents": 2}, width=0.25),
            NormalModeDeformation(parts[0].coords, parts[1]),
            rigid.renderer,
        )


def make_vae(parts, d=3):
    model, modes = parts
    torch.manual_seed(0)
    return MotionAutoencoder(
        ImageEncoder(BOX, {"shifts": 2, "latents": d, "latent_log_var": d}, width=0.25),
        NormalModeDeformation(model.coords, modes[:d]),
        AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        variational=True,
        latent_kl_weight=0.5,
        image_loss="correlation",
    )


def test_vae_samples_in_training_and_uses_the_mean_in_eval(parts):
    autoencoder = make_vae(parts)
    rotations = torch.eye(3).expand(4, 3, 3)
    ctf = torch.tensor([[10000.0, 10000.0, 0, 300, 2.7, 0.1, 0, 0]]).expand(4, 8)
    images, shifts = torch.randn(4, BOX, BOX), torch.zeros(4, 2)
    # a fresh VAE: posterior N(0, 1), so KL = 0 and training renders random conformations
    autoencoder.train()
    first = autoencoder(images, rotations, shifts, ctf)
    second = autoencoder(images, rotations, shifts, ctf)
    assert not torch.allclose(first.images, second.images)
    torch.testing.assert_close(first.regularization["latent_kl"], torch.tensor(0.0))
    autoencoder.eval()
    with torch.no_grad():
        a = autoencoder(images, rotations, shifts, ctf)
        b = autoencoder(images, rotations, shifts, ctf)
    assert torch.equal(a.images, b.images)
    reference = autoencoder.renderer(autoencoder.deformation.reference[None].expand(4, -1, -1),
                                     rotations, shifts, ctf)  # fmt: skip
    torch.testing.assert_close(a.images, reference, rtol=1e-4, atol=1e-5)
    assert autoencoder.image_loss(a.images, a.images).abs().max() < 1e-5


def test_vae_needs_the_log_variance_head(parts):
    model, modes = parts
    with pytest.raises(ValueError, match="latent_log_var"):
        MotionAutoencoder(
            ImageEncoder(BOX, {"shifts": 2, "latents": 3}, width=0.25),
            NormalModeDeformation(model.coords, modes),
            AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
            variational=True,
        )

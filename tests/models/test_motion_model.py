"""The motion model's wiring: inference -> deformation -> renderer, and its objectives."""

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import ReconstructionObjective, RegressionObjective
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model

BOX, PIXEL_SIZE = 24, 4.0
CTF = torch.tensor([[10000.0, 10000.0, 0, 300, 2.7, 0.1, 0, 0]])


@pytest.fixture(scope="module")
def parts(adk_open_path):
    model = read_model(adk_open_path)
    model = model.with_coords(model.coords - model.coords.mean(0) + (BOX // 2) * PIXEL_SIZE)
    modes = np.random.default_rng(0).normal(size=(3, model.n_atoms, 3))
    modes /= np.linalg.norm(modes.reshape(3, -1), axis=1)[:, None, None]
    return model, modes


def make(parts, d=3, mixed_precision=False, variational=False):
    model, modes = parts
    torch.manual_seed(0)
    heads = {"shifts": 2, "latents": d} | ({"latent_log_var": d} if variational else {})
    return MotionModel.with_encoder(
        ImageEncoder(BOX, heads, width=0.25),
        NormalModeDeformation(model.coords, modes[:d]),
        AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        variational=variational,
        mixed_precision=mixed_precision,
    )


def batch_of(n, rotations=None, shifts=None, seed=1):
    if rotations is None:
        rotations = torch.as_tensor(
            uniform_rotations(n, np.random.default_rng(seed)), dtype=torch.float32
        )
    return {
        "image": torch.randn(n, BOX, BOX, generator=torch.Generator().manual_seed(seed)),
        "rotation": rotations,
        "shift": torch.randn(n, 2) if shifts is None else shifts,
        "ctf": CTF.expand(n, 8),
        "index": torch.arange(n),
    }


def test_fresh_model_renders_the_reference_at_the_given_shifts(parts):
    model, _ = parts
    motion = make(parts)
    batch = batch_of(4)
    output = motion(batch)
    torch.testing.assert_close(output.pose.shifts, batch["shift"])
    assert torch.equal(output.estimates.mean_latents, torch.zeros(4, 3))
    expected = motion.renderer(
        torch.tensor(model.coords, dtype=torch.float32),
        batch["rotation"],
        batch["shift"],
        batch["ctf"],
    )
    assert output.images.shape == (4, 1, BOX, BOX)
    torch.testing.assert_close(output.images[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert output.regularization == {}


def test_latent_head_scaled_to_angstrom_rms(parts):
    motion = make(parts)
    head = motion.inference.encoder.heads["latents"].mlp[-1]
    torch.nn.init.constant_(head.bias, 1.0)
    latents = motion(batch_of(2), render=False).estimates.mean_latents
    torch.testing.assert_close(latents, torch.full((2, 3), np.sqrt(parts[0].n_atoms)))


def test_rigid_and_mixed_precision_on_cpu(parts):
    rigid = make(parts, d=0, mixed_precision=True)  # autocast applies on CUDA only
    batch = batch_of(2, rotations=torch.eye(3).expand(2, 3, 3), shifts=torch.zeros(2, 2))
    output = rigid(batch)
    assert output.estimates.mean_latents.shape == (2, 0)
    assert output.images.dtype == torch.float32
    with pytest.raises(ValueError, match="do not match"):
        MotionModel.with_encoder(
            ImageEncoder(BOX, {"shifts": 2, "latents": 2}, width=0.25),
            NormalModeDeformation(parts[0].coords, parts[1]),
            rigid.renderer,
        )


def test_vae_samples_in_training_and_uses_the_mean_in_eval(parts):
    motion = make(parts, variational=True)
    batch = batch_of(4, rotations=torch.eye(3).expand(4, 3, 3), shifts=torch.zeros(4, 2))
    objective = ReconstructionObjective("correlation", prior_weights={"latent_kl": 0.5})
    # a fresh VAE: posterior N(0, 1), so KL = 0 and training renders random conformations
    motion.train()
    first, second = motion(batch), motion(batch)
    assert not torch.allclose(first.images, second.images)
    loss = objective(motion, batch)
    torch.testing.assert_close(loss.terms["latent_kl"], torch.tensor(0.0))
    several = motion(batch, samples=5)
    assert several.images.shape == (4, 5, BOX, BOX)
    assert not torch.allclose(several.images[:, 0], several.images[:, 1])
    motion.eval()
    with torch.no_grad():
        a, b = motion(batch), motion(batch)
    assert torch.equal(a.images, b.images)
    reference = motion.renderer(
        motion.deformation.reference[None].expand(4, -1, -1),
        batch["rotation"], batch["shift"], batch["ctf"],
    )  # fmt: skip
    torch.testing.assert_close(a.images[:, 0], reference, rtol=1e-4, atol=1e-5)
    assert objective.image_loss(a.images, a.images[:, 0]).abs().max() < 1e-5


def test_vae_needs_the_log_variance_head(parts):
    model, modes = parts
    with pytest.raises(ValueError, match="latent_log_var"):
        MotionModel.with_encoder(
            ImageEncoder(BOX, {"shifts": 2, "latents": 3}, width=0.25),
            NormalModeDeformation(model.coords, modes),
            AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
            variational=True,
        )


def test_logmeanexp_over_one_sample_equals_the_mean(parts):
    motion = make(parts)
    batch = batch_of(3)
    mean = ReconstructionObjective("l2", reduce="mean")(motion, batch)
    lme = ReconstructionObjective("l2", reduce="logmeanexp")(motion, batch)
    torch.testing.assert_close(lme.per_image, mean.per_image, rtol=1e-6, atol=1e-7)


def test_logmeanexp_is_at_most_the_mean_over_samples(parts):
    """−log mean exp(−x) ≤ mean(x) (Jensen): the importance-weighted bound is tighter."""
    motion = make(parts, variational=True)
    motion.train()
    batch = batch_of(3)
    torch.manual_seed(3)
    mean = ReconstructionObjective("l2", samples=8, reduce="mean")(motion, batch)
    torch.manual_seed(3)
    lme = ReconstructionObjective("l2", samples=8, reduce="logmeanexp")(motion, batch)
    assert (lme.per_image <= mean.per_image + 1e-6).all()


def test_regression_objective_renders_nothing(parts):
    motion = make(parts)

    def no_render(*args, **kwargs):
        raise AssertionError("the regression objective rendered an image")

    motion.renderer.forward = no_render
    batch = batch_of(4) | {"target_latents": torch.ones(4, 3)}
    loss = RegressionObjective(latent_scale=2.0)(motion, batch)
    # a fresh encoder predicts 0: error 1 per latent, in units of 2
    torch.testing.assert_close(loss.per_image, torch.full((4,), 0.25))
    loss.total.backward()
    grads = [p.grad for p in motion.inference.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_the_fourier_space_l2_objective_equals_the_real_space_one(parts):
    """Parseval: the spectra's L2 is the images' L2, with no inverse FFT per sample."""
    motion = make(parts)
    head = motion.inference.encoder.heads["latents"].mlp[-1]
    torch.nn.init.normal_(head.weight, std=0.01)  # a non-trivial conformation per image
    batch = batch_of(4)
    batch["image"] = batch["image"] * 0.1
    real = ReconstructionObjective("l2")(motion, batch)
    real.total.backward()
    real_grad = head.weight.grad.clone()
    head.weight.grad = None
    spectral = ReconstructionObjective("fourier_l2")(motion, batch)
    spectral.total.backward()
    torch.testing.assert_close(spectral.per_image, real.per_image, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(head.weight.grad, real_grad, rtol=1e-4, atol=1e-8)
    assert spectral.output.images.is_complex()

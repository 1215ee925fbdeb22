"""The per-particle polish (models/polish.py) recovers known amplitudes the encoder misses.

AdK open is the reference and its one "mode" the unit open -> closed displacement (as in
test_recovery.py), so each particle's true amplitude is known. An encoder trained for two
short epochs is still far from it; polishing each particle's latent (and shift) on its own
image must bring the estimates close, and with 0 steps the predictions must be exactly the
trainer's without a polish.
"""

import math

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import POSE_WIDTH, MotionModel
from cryomotion.models.per_particle import ParticleState
from cryomotion.models.polish import (
    LatentPrior,
    PolishSettings,
    latent_candidates,
    negative_log_likelihood,
)
from cryomotion.structure.io import read_model
from cryomotion.structure.superpose import superpose
from cryomotion.train.calibrate import calibrate_intensity
from cryomotion.train.config import TrainingConfig
from cryomotion.train.trainer import Trainer

BOX, PIXEL_SIZE, PARTICLES = 32, 3.0, 256


@pytest.fixture(scope="module")
def particles(simulate_particles, adk_open_path, adk_closed_path):
    """(model, reference coords, unit mode, true amplitudes (n,) Å, particles) at SNR 1."""
    open_state = read_model(adk_open_path)
    reference = open_state.coords - open_state.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    displacement = superpose(read_model(adk_closed_path).coords, reference) - reference
    mode = displacement / np.linalg.norm(displacement)
    rng = np.random.default_rng(0)
    amplitudes = rng.uniform(0, np.linalg.norm(displacement), PARTICLES)
    model = open_state.with_coords(reference)
    with torch.no_grad():
        coords = NormalModeDeformation(reference, mode[None])(
            torch.as_tensor(amplitudes[:, None], dtype=torch.float32)
        ).coords
    items = simulate_particles(model, coords, rng, BOX, PIXEL_SIZE, True, 1.0, shift_sd=2.0)
    return model, reference, mode, amplitudes, items


def trained(particles, epochs: int, pose_table: bool = False) -> Trainer:
    model, reference, mode, _, items = particles
    torch.manual_seed(0)
    autoencoder = MotionModel.with_encoder(
        ImageEncoder(BOX, {"shifts": 2, "latents": 1}, width=0.5, norm="batch"),
        NormalModeDeformation(reference, mode[None]),
        AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        intensity=IntensityScale(1, "fitted"),
        pose_table=ParticleState(PARTICLES, [0.01] * 3 + [0.2] * 2) if pose_table else None,
    )
    if pose_table:
        assert autoencoder.pose_table.width == POSE_WIDTH
    calibrate_intensity(autoencoder, items, np.arange(PARTICLES))
    settings = TrainingConfig(epochs=epochs, batch_size=16, lr=1e-4, seed=0, workers=0)
    trainer = Trainer(
        autoencoder, items, np.arange(PARTICLES), np.arange(0), settings, progress=False
    )
    trainer.fit()
    return trainer


def median_error(trainer: Trainer, amplitudes: np.ndarray) -> float:
    """Median |predicted − true| amplitude, in Å RMS over the atoms."""
    predicted = trainer.predict(np.arange(PARTICLES))
    error = np.abs(predicted["latents"][:, 0] - amplitudes[predicted["index"]])
    return float(np.median(error) / trainer.module.deformation.latent_scale)


@pytest.fixture(scope="module")
def two_epochs(particles) -> Trainer:
    """An encoder after two short epochs (shared: tests reset its polish settings)."""
    return trained(particles, epochs=2)


def test_polish_brings_a_poor_encoder_close_to_the_true_amplitudes(particles, two_epochs):
    amplitudes = particles[3]
    trainer = two_epochs
    trainer.polish_settings = PolishSettings()
    encoder_alone = median_error(trainer, amplitudes)
    # maximum likelihood: the encoder's latents, all alike, would make a too narrow prior
    trainer.polish_settings = PolishSettings(steps=40, latent_step=0.2, prior="none")
    polished = median_error(trainer, amplitudes)
    print(f"median amplitude error: encoder {encoder_alone:.2f} Å, polished {polished:.2f} Å")
    assert encoder_alone > 2.0  # the encoder has not learned yet (measured 3.4 Å)
    assert polished < 0.35 * encoder_alone  # measured 0.55 Å


@pytest.mark.parametrize("pose_table", [False, True])
def test_zero_polish_steps_reproduce_the_predictions_exactly(particles, two_epochs, pose_table):
    trainer = trained(particles, epochs=1, pose_table=True) if pose_table else two_epochs
    trainer.polish_settings = PolishSettings()
    trainer.predict_pose_steps = 3
    without = trainer.predict(np.arange(PARTICLES))
    trainer.polish_settings = PolishSettings(steps=0, latent_step=0.2)
    with_zero = trainer.predict(np.arange(PARTICLES))
    for key, value in without.items():
        np.testing.assert_array_equal(with_zero[key], value, err_msg=key)


def test_polish_never_raises_a_particles_loss(particles, two_epochs):
    """A particle whose polished loss is worse than its start keeps its start."""
    from cryomotion.models.polish import polish

    trainer = two_epochs
    module = trainer.module.eval()
    batch = {k: torch.stack([particles[4][i][k] for i in range(32)]) for k in ("image",
             "rotation", "shift", "ctf", "index")}  # fmt: skip
    with torch.no_grad():
        output = module(batch, render=False)
    result = polish(module, batch, output.estimates, output.pose, "l2",
                    PolishSettings(steps=5, latent_step=5.0))  # fmt: skip
    assert torch.all(result.loss_after <= result.loss_before)
    assert result.latents.shape == (32, 1)


def test_empirical_prior_of_a_known_gaussian():
    """N(μ, Σ) from samples and posterior variances (law of total variance)."""
    generator = torch.Generator().manual_seed(0)
    covariance = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    samples = mean + torch.randn(20000, 2, generator=generator, dtype=torch.float64) @ (
        torch.linalg.cholesky(covariance).T
    )
    extra = torch.full((20000, 2), 0.25, dtype=torch.float64)
    prior = LatentPrior.empirical(samples, extra, ridge=0.0)
    np.testing.assert_allclose(prior.mean, mean, atol=0.05)
    expected = torch.linalg.inv(covariance + 0.25 * torch.eye(2, dtype=torch.float64))
    np.testing.assert_allclose(prior.precision, expected, rtol=0.05, atol=0.02)
    # the energy is half the squared Mahalanobis distance
    z = prior.mean + torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    energy = prior.energy(z)
    assert abs(float(energy[0])) < 1e-6
    np.testing.assert_allclose(float(energy[1]), 0.5 * float(prior.precision[0, 0]), rtol=1e-3)


def test_profiled_correlation_likelihood_is_the_gaussian_at_the_best_scale():
    """−ρ²|y|²/2 = min over a of |y − a ŷ|²/2 − |y|²/2."""
    generator = torch.Generator().manual_seed(1)
    measured = torch.randn(4, 8, 8, generator=generator)
    rendered = torch.randn(4, 8, 8, generator=generator) + 0.5 * measured
    scale = (rendered * measured).sum((1, 2)) / rendered.square().sum((1, 2))
    best = negative_log_likelihood(scale[:, None, None] * rendered, measured, "l2")
    profiled = negative_log_likelihood(rendered, measured, "correlation")
    np.testing.assert_allclose(profiled, best - 0.5 * measured.square().sum((1, 2)), rtol=1e-4)


def test_latent_candidates_are_the_cluster_centres():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=generator) for c in centres])
    found = latent_candidates(points, 3)
    assert found.shape == (3, 2)
    distance = torch.cdist(found, centres).min(dim=1).values
    assert float(distance.max()) < 0.05  # each found centre is one of the true ones
    assert torch.equal(found, latent_candidates(points, 3))  # deterministic
    assert latent_candidates(points[:2], 5).shape == (2, 2)  # no more than the points


@pytest.mark.parametrize("estimate", ["map", "mean"])
def test_candidate_search_recovers_the_amplitudes(particles, two_epochs, estimate):
    """With a grid of candidate amplitudes and no steps, each particle starts from the
    grid point nearest its true amplitude (SNR 1: the likelihood picks it), never worse in
    loss than the encoder's estimate (map); or from its posterior mean over the grid with
    equal masses (mean): either as close to the truth as the grid's spacing, and closer
    than the encoder."""
    from cryomotion.models.polish import polish

    amplitudes = particles[3]
    module = two_epochs.module.eval()
    items = [particles[4][i] for i in range(64)]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("image", "rotation",
             "shift", "ctf", "index")}  # fmt: skip
    with torch.no_grad():
        output = module(batch, render=False)
    grid = torch.linspace(0.0, float(amplitudes.max()), 21)[:, None]
    spacing = float(grid[1] - grid[0])
    settings = PolishSettings(steps=0, candidates=len(grid), estimate=estimate)
    result = polish(module, batch, output.estimates, output.pose, "l2", settings,
                    candidates=grid, candidate_masses=torch.full((21,), 1 / 21))  # fmt: skip
    chosen = result.latents[:, 0].numpy()
    truth = amplitudes[batch["index"].numpy()]
    encoder_error = np.median(np.abs(output.estimates.mean_latents[:, 0].numpy() - truth))
    assert np.median(np.abs(chosen - truth)) <= spacing
    assert np.median(np.abs(chosen - truth)) < 0.5 * encoder_error
    if estimate == "map":
        assert torch.all(result.loss_after <= result.loss_before)
    else:
        with pytest.raises(ValueError, match="estimate"):
            PolishSettings(estimate="median")


def test_posterior_mean_over_candidates_weighs_likelihood_and_prior_mass():
    from cryomotion.models.polish import posterior_mean

    candidates = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    energies = torch.tensor([[0.0, math.log(3.0)], [50.0, 0.0]])  # likelihoods 3:1, ~0:1
    torch.testing.assert_close(
        posterior_mean(energies, candidates), torch.tensor([[0.25, 0.5], [1.0, 2.0]])
    )
    # a prior 1:3 evens the first particle's likelihoods 3:1: the midpoint
    masses = torch.tensor([0.25, 0.75])
    torch.testing.assert_close(
        posterior_mean(energies, candidates, masses)[0], torch.tensor([0.5, 1.0])
    )


def test_candidate_masses_are_refitted_to_the_images():
    """Particles from three overlapping classes (means 0, 1, 2, unit noise) in proportions
    0.6 / 0.3 / 0.1: the EM recovers the proportions from the likelihoods alone, starting
    from equal masses."""
    from cryomotion.models.polish import fit_candidate_masses

    generator = torch.Generator().manual_seed(0)
    truth = torch.tensor([0.6, 0.3, 0.1])
    means = torch.tensor([0.0, 1.0, 2.0])
    classes = torch.multinomial(truth, 20000, replacement=True, generator=generator)
    values = means[classes] + torch.randn(20000, generator=generator)
    energies = 0.5 * (values[:, None] - means[None]).square()
    fitted = fit_candidate_masses(energies, iterations=500)
    torch.testing.assert_close(fitted, truth, atol=0.04, rtol=0)
    assert float(fitted.sum()) == pytest.approx(1.0)


def test_the_gaussian_objective_polishes_with_its_own_likelihood():
    """AtomVAE's "gaussian" likelihood is computed from spectra in training; the polish
    compares images in real space with the objective's ``real_likelihood``. The two must
    be the same density: −log N(y; ŷ, 1) = ½|y − ŷ|² + (n/2) log 2π (Parseval)."""
    from cryomotion.models.objectives import ReconstructionObjective

    objective = ReconstructionObjective(likelihood="gaussian")
    generator = torch.Generator().manual_seed(0)
    rendered = torch.randn(3, 1, 16, 16, generator=generator)
    measured = torch.randn(3, 16, 16, generator=generator)
    spectral = objective.image_loss(rendered, measured)
    real = negative_log_likelihood(rendered[:, 0], measured, objective.real_likelihood)
    constant = 0.5 * 16 * 16 * math.log(2 * math.pi)
    torch.testing.assert_close(spectral, real + constant, rtol=1e-5, atol=1e-3)


def test_the_polish_reports_the_estimates_no_fit_chose(particles, two_epochs):
    """The motion scale is chosen on these: the posterior mean over the candidates before
    any step (estimate "mean"), else the encoder's latents, each at the start pose."""
    trainer = two_epochs
    every = np.arange(PARTICLES)
    trainer.polish_settings = PolishSettings()
    encoder = trainer.predict(every)
    assert "unfitted_latents" not in encoder  # nothing polished, nothing to report
    mean = PolishSettings(steps=0, prior="none", candidates=8, estimate="mean")
    trainer.polish_settings = mean
    posterior_mean = trainer.predict(every)
    trainer.polish_settings = PolishSettings(
        steps=10, latent_step=0.2, prior="none", candidates=8, estimate="mean"
    )
    stepped = trainer.predict(every)
    np.testing.assert_allclose(stepped["unfitted_latents"], posterior_mean["latents"], atol=1e-6)
    np.testing.assert_allclose(stepped["unfitted_shifts"], encoder["shifts"], atol=1e-6)
    assert not np.allclose(stepped["latents"], stepped["unfitted_latents"])
    trainer.polish_settings = PolishSettings(steps=10, latent_step=0.2, prior="none")
    from_encoder = trainer.predict(every)
    np.testing.assert_allclose(from_encoder["unfitted_latents"], encoder["latents"], atol=1e-6)
    trainer.polish_settings = PolishSettings()

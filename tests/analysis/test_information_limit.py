"""The information limit (analysis/information_limit.py) against what a posterior must be.

A correct posterior is *calibrated*: over particles drawn from the prior, the probability
it gives the true frame averages to the expected probability of a frame drawn from the
posterior itself, E[w_true] = E[Σ_f w_f²] (both are P(two draws agree)), and the mean
posterior is the prior. These identities hold only with the right noise σ in the
likelihood: a posterior computed with σ too small is over-confident (E[w_true] < E[Σ w²]),
with σ too large under-confident, which the test checks too.
"""

import numpy as np
import pytest
import torch

from cryomotion.analysis.information_limit import (
    frame_posterior,
    information_limit,
    limit_from_posterior,
)
from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.errors import InputError
from cryomotion.imaging.fourier import cropped_noise_std, fourier_crop
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model
from cryomotion.structure.superpose import superpose

BOX, PIXEL_SIZE = 24, 4.0


@pytest.fixture(scope="module")
def two_frames(adk_open_path, adk_closed_path):
    """AdK open and a conformation 0.5 Å RMS towards closed, residue-bead renderer; 600
    particles drawn with prior (0.3, 0.7), with clean images (noise added by the tests)."""
    torch.set_num_threads(1)
    open_state = read_model(adk_open_path)
    reference = open_state.coords - open_state.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    displacement = superpose(read_model(adk_closed_path).coords, reference) - reference
    rms = np.sqrt((displacement**2).sum(-1).mean())
    frames = np.stack([reference, reference + displacement * (0.5 / rms)])
    renderer = AtomRenderer.from_model(open_state.with_coords(reference), BOX, PIXEL_SIZE,
                                       coarse=True)  # fmt: skip
    rng = np.random.default_rng(0)
    n = 600
    prior = np.array([0.3, 0.7])
    true = rng.choice(2, size=n, p=prior)
    rotations = torch.as_tensor(uniform_rotations(n, rng), dtype=torch.float32)
    shifts = torch.as_tensor(rng.normal(0, 1.0, (n, 2)), dtype=torch.float32)
    ctf = torch.zeros(n, 8)
    ctf[:, :2] = torch.as_tensor(rng.uniform(8000, 15000, (n, 1)), dtype=torch.float32)
    ctf[:, 3:6] = torch.tensor([300.0, 2.7, 0.1])
    with torch.no_grad():
        clean = renderer(torch.as_tensor(frames[true], dtype=torch.float32), rotations, shifts, ctf)
    frames_t = torch.as_tensor(frames, dtype=torch.float32)
    # the typical image difference between the frames sets a noise where both are plausible
    with torch.no_grad():
        pair = renderer(frames_t[None].expand(8, 2, -1, -1).reshape(16, -1, 3),
                        rotations[:8].repeat_interleave(2, 0), shifts[:8].repeat_interleave(2, 0),
                        ctf[:8].repeat_interleave(2, 0)).reshape(8, 2, BOX, BOX)  # fmt: skip
    difference = float((pair[:, 1] - pair[:, 0]).square().sum((-2, -1)).sqrt().median())
    return dict(frames=frames, frames_t=frames_t, renderer=renderer, prior=prior, true=true,
                renderer_model=open_state.with_coords(reference),
                rotations=rotations, shifts=shifts, ctf=ctf, clean=clean,
                sigma=difference / 2.0)  # fmt: skip


def posterior_at(data, noise_std, model_std):
    generator = torch.Generator().manual_seed(3)
    images = data["clean"] + noise_std * torch.randn(data["clean"].shape, generator=generator)
    posterior = frame_posterior(
        images, data["frames_t"], data["prior"], data["rotations"], data["shifts"], data["ctf"],
        data["renderer"], model_std,
    )  # fmt: skip
    return posterior.numpy()


def calibration(posterior, true):
    """(E[w_true], E[Σ w²])."""
    n = len(true)
    return posterior[np.arange(n), true].mean(), (posterior**2).sum(1).mean()


def test_the_posterior_is_calibrated_with_the_true_noise(two_frames):
    sigma = two_frames["sigma"]
    posterior = posterior_at(two_frames, sigma, sigma)
    hit, agreement = calibration(posterior, two_frames["true"])
    print(f"E[w_true] {hit:.3f}, E[sum w^2] {agreement:.3f}, mean posterior {posterior.mean(0)}")
    assert 0.6 < hit < 0.95  # the frames are neither certain nor indistinguishable
    assert abs(hit - agreement) < 0.015
    np.testing.assert_allclose(posterior.mean(0), two_frames["prior"], atol=0.05)


def test_the_posterior_of_cropped_images_is_calibrated_with_the_cropped_noise(two_frames):
    """Images Fourier-cropped 24 -> 12 px and rendered at 12 px: calibrated with the
    cropped noise's σ (cropped_noise_std), under-confident with the uncropped one's."""
    sigma = two_frames["sigma"]
    generator = torch.Generator().manual_seed(3)
    noisy = two_frames["clean"] + sigma * torch.randn(two_frames["clean"].shape,
                                                      generator=generator)  # fmt: skip
    images = fourier_crop(noisy, BOX // 2)
    renderer = AtomRenderer.from_model(two_frames["renderer_model"], BOX // 2, PIXEL_SIZE * 2,
                                       coarse=True)  # fmt: skip
    args = (two_frames["frames_t"], two_frames["prior"], two_frames["rotations"],
            two_frames["shifts"], two_frames["ctf"], renderer)  # fmt: skip
    cropped_sigma = cropped_noise_std(sigma, BOX, BOX // 2)
    hit, agreement = calibration(frame_posterior(images, *args, cropped_sigma).numpy(),
                                 two_frames["true"])  # fmt: skip
    assert 0.55 < hit < 0.95 and abs(hit - agreement) < 0.015
    hit, agreement = calibration(frame_posterior(images, *args, sigma).numpy(),
                                 two_frames["true"])  # fmt: skip
    assert hit - agreement > 0.025  # σ of the uncropped images: under-confident


def test_a_wrong_noise_level_breaks_the_calibration(two_frames):
    sigma = two_frames["sigma"]
    hit, agreement = calibration(posterior_at(two_frames, sigma, sigma / 2), two_frames["true"])
    assert agreement - hit > 0.025  # over-confident
    hit, agreement = calibration(posterior_at(two_frames, sigma, sigma * 2), two_frames["true"])
    assert hit - agreement > 0.025  # under-confident


def test_posterior_limits_clean_and_hopeless(two_frames):
    """Almost no noise: the true frame, limit 0; overwhelming noise: the prior, and the
    posterior mean is the prior-weighted mean of the frames."""
    sigma, true, frames = two_frames["sigma"], two_frames["true"], two_frames["frames"]
    sharp = posterior_at(two_frames, sigma / 100, sigma / 100)
    limit, best, map_rmsd, width = limit_from_posterior(sharp, frames, true)
    np.testing.assert_array_equal(best, true)
    assert limit.max() < 1e-3 and map_rmsd.max() < 1e-9 and width.max() < 1e-3
    flat = posterior_at(two_frames, sigma, sigma * 1e4)
    np.testing.assert_allclose(flat, np.broadcast_to(two_frames["prior"], flat.shape), atol=1e-4)
    limit, _, _, width = limit_from_posterior(flat, frames, true)
    # |X̄ − X_f| = 0.5 Å × (1 − p_f): 0.35 Å from frame 0, 0.15 Å from frame 1
    np.testing.assert_allclose(limit, np.where(true == 0, 0.35, 0.15), atol=0.02)
    np.testing.assert_allclose(width, 0.5 * np.sqrt(0.3 * 0.7), atol=1e-3)


def test_information_limit_of_a_simulated_dataset(simulate_with_cli, adk_closed_path):
    """A clean-enough simulation: every particle's MAP frame is its true frame."""
    folder = simulate_with_cli("limit", adk_closed_path, 4, 12, 24, 4.0, snr="100")
    result = information_limit(folder, progress=False)
    truth = np.load(folder / "ground_truth.npz")
    np.testing.assert_array_equal(result.map_frame, truth["frame_index"])
    assert result.summary()["median_limit"] < 0.05
    np.testing.assert_allclose(result.posterior.sum(1), 1.0)


def test_estimates_made_of_other_models_are_scored_against_the_true_frames(two_frames):
    """A sharp posterior on the true frame, but each frame's model is the other frame:
    the estimate is the other frame, its error their distance."""
    sigma, true, frames = two_frames["sigma"], two_frames["true"], two_frames["frames"]
    sharp = posterior_at(two_frames, sigma / 100, sigma / 100)
    swapped = frames[::-1]
    limit, best, map_rmsd, width = limit_from_posterior(sharp, frames, true, models=swapped)
    expected = per_particle_rmsd(frames[1 - true], frames[true])
    np.testing.assert_allclose(limit, expected, atol=1e-6)
    np.testing.assert_allclose(map_rmsd, expected, atol=1e-9)
    assert width.max() < 1e-3  # the posterior is as sharp as before
    with pytest.raises(ValueError, match="expected the frames'"):
        limit_from_posterior(sharp, frames, true, models=frames[:1])


def test_the_limit_with_the_frames_as_models_or_the_full_box_is_unchanged(
    simulate_with_cli, adk_closed_path
):
    folder = simulate_with_cli("limit", adk_closed_path, 4, 12, 24, 4.0, snr="100")
    truth = np.load(folder / "ground_truth.npz")
    plain = information_limit(folder, progress=False)
    same = information_limit(folder, progress=False, models=truth["frame_coords"], box=24)
    np.testing.assert_array_equal(same.posterior, plain.posterior)
    np.testing.assert_array_equal(same.posterior_mean_rmsd, plain.posterior_mean_rmsd)
    # a 16-px crop (8 Å Nyquist) still tells these frames apart at SNR 100
    cropped = information_limit(folder, progress=False, box=16)
    np.testing.assert_array_equal(cropped.map_frame, truth["frame_index"])
    with pytest.raises(InputError, match="box 25: expected an even size"):
        information_limit(folder, progress=False, box=25)
    with pytest.raises(InputError, match="models of shape"):
        information_limit(folder, progress=False, models=truth["frame_coords"][:2])

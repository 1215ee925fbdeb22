"""The NMA autoencoder recovers known amplitudes from simulated images (seed 000 set-up).

AdK open is the reference; its one "mode" is the unit open -> closed displacement, so the
true amplitude of each particle is known exactly. Images are rendered with random poses,
shifts and CTFs; the encoder sees only the images, and the decoder gets the poses and
CTFs, as in the seed. Learning is judged on the particles' predicted amplitudes.
"""

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import MotionModel
from cryomotion.structure.io import read_model
from cryomotion.structure.superpose import superpose
from cryomotion.train.calibrate import calibrate_intensity
from cryomotion.train.config import TrainingConfig
from cryomotion.train.trainer import Trainer


def recover(
    simulate,
    adk_open_path,
    adk_closed_path,
    n,
    epochs,
    box,
    pixel_size,
    coarse,
    snr,
    intensity="none",
    transform=None,
):
    """Train on ``n`` simulated particles; (predicted, true) amplitudes of all of them.

    ``intensity`` is the model's intensity-scale mode (the particles are fitted first
    unless "none"); ``transform`` maps the images (n, D, D) to other units before training.
    """
    open_state = read_model(adk_open_path)
    closed = read_model(adk_closed_path)
    reference = open_state.coords - open_state.coords.mean(0) + (box // 2) * pixel_size
    closed = superpose(closed.coords, reference)
    displacement = closed - reference
    mode = displacement / np.linalg.norm(displacement)
    rng = np.random.default_rng(0)
    amplitudes = rng.uniform(0, np.linalg.norm(displacement), n)  # 0 ... 7 Å RMS
    model = open_state.with_coords(reference)
    truth = NormalModeDeformation(reference, mode[None])
    with torch.no_grad():
        coords = truth(torch.as_tensor(amplitudes[:, None], dtype=torch.float32)).coords
    particles = simulate(model, coords, rng, box, pixel_size, coarse, snr, shift_sd=2.0)
    if transform is not None:
        images = transform(torch.stack([item["image"] for item in particles.items]))
        for item, image in zip(particles.items, images):
            item["image"] = image
    torch.manual_seed(0)
    autoencoder = MotionModel.with_encoder(
        ImageEncoder(box, {"shifts": 2, "latents": 1}, width=0.5, norm="batch"),
        NormalModeDeformation(reference, mode[None]),
        AtomRenderer.from_model(model, box, pixel_size, coarse=coarse),
        intensity=IntensityScale(1, intensity),
    )
    calibrate_intensity(autoencoder, particles, np.arange(n))
    settings = TrainingConfig(epochs=epochs, batch_size=16, lr=1e-4, seed=0, workers=0)
    trainer = Trainer(
        autoencoder, particles, np.arange(n), np.arange(0),
        settings, progress=False,
    )  # fmt: skip
    trainer.fit()
    predicted = trainer.predict(np.arange(n))
    return predicted["latents"][:, 0], amplitudes[predicted["index"]]


def test_amplitudes_recovered_fast(simulate_particles, adk_open_path, adk_closed_path):
    """Clean 32-px images, residue beads: learning under a minute."""
    predicted, true = recover(
        simulate_particles, adk_open_path, adk_closed_path, 768, 4, 32, 3.0, True, None
    )
    r = np.corrcoef(predicted, true)[0, 1]
    print(f"correlation of predicted and true amplitudes: {r:.3f}")
    assert abs(r) > 0.8


@pytest.mark.slow
def test_amplitudes_recovered(simulate_particles, adk_open_path, adk_closed_path):
    """Mildly noisy 32-px images of all heavy atoms."""
    predicted, true = recover(
        simulate_particles, adk_open_path, adk_closed_path, 2048, 8, 32, 3.0, False, 1.0
    )
    r = np.corrcoef(predicted, true)[0, 1]
    print(f"correlation of predicted and true amplitudes: {r:.3f}")
    assert abs(r) > 0.9

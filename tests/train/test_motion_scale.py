"""The motion scale (train/motion_scale.py) is chosen by held-out images: models that
explain them are kept as learned (α = 1); deformations the images do not show are taken
back to the reference (α = 0). Known answers on AdK moved along one unit direction."""

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.noise import add_white_noise
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel, scale_motion
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model
from cryomotion.structure.superpose import superpose
from cryomotion.train.config import TrainingConfig
from cryomotion.train.motion_scale import choose_motion_scale
from cryomotion.train.trainer import Trainer

BOX, PIXEL_SIZE, PARTICLES = 32, 3.0, 48
SCALES = [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.fixture(scope="module")
def setting(adk_open_path, adk_closed_path):
    """(model, reference coords, unit direction, true amplitudes, rotations, shifts, CTFs)."""
    open_state = read_model(adk_open_path)
    reference = open_state.coords - open_state.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    displacement = superpose(read_model(adk_closed_path).coords, reference) - reference
    direction = displacement / np.linalg.norm(displacement)
    rng = np.random.default_rng(0)
    amplitudes = rng.uniform(0.3, 1.0, PARTICLES) * np.linalg.norm(displacement)
    rotations = uniform_rotations(PARTICLES, rng)
    shifts = rng.normal(0, 1.0, (PARTICLES, 2))
    ctf = np.zeros((PARTICLES, 8))
    ctf[:, :2] = rng.uniform(8000, 15000, (PARTICLES, 1))
    ctf[:, 3:6] = (300.0, 2.7, 0.1)
    model = open_state.with_coords(reference)
    return model, reference, direction, amplitudes, rotations, shifts, ctf


def trainer_for(setting, true_amplitudes: np.ndarray) -> Trainer:
    """A trainer (no epochs) whose data are the reference moved by ``true_amplitudes``."""
    model, reference, direction, _, rotations, shifts, ctf = setting
    deformation = NormalModeDeformation(reference, direction[None])
    renderer = AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True)
    with torch.no_grad():
        coords = deformation(torch.as_tensor(true_amplitudes[:, None], dtype=torch.float32))
        images = renderer(
            coords.coords,
            torch.as_tensor(rotations, dtype=torch.float32),
            torch.as_tensor(shifts, dtype=torch.float32),
            torch.as_tensor(ctf, dtype=torch.float32),
        )
    images = add_white_noise(images, 1.0, generator=torch.Generator().manual_seed(1))
    module = MotionModel.with_encoder(
        ImageEncoder(BOX, {"shifts": 2, "latents": 1}, width=0.25, norm="group"),
        deformation,
        renderer,
    )
    items = [
        {
            "image": images[i],
            "rotation": torch.as_tensor(rotations[i], dtype=torch.float32),
            "shift": torch.as_tensor(shifts[i], dtype=torch.float32),
            "ctf": torch.as_tensor(ctf[i], dtype=torch.float32),
            "index": torch.tensor(i),
        }
        for i in range(PARTICLES)
    ]
    settings = TrainingConfig(epochs=0, batch_size=16, seed=0, workers=0)
    return Trainer(module, items, np.arange(PARTICLES), np.arange(0), settings, progress=False)


def predictions_of(setting, latents: np.ndarray) -> dict[str, np.ndarray]:
    _, _, _, _, rotations, shifts, _ = setting
    return {
        "latents": latents[:, None].astype(np.float32),
        "rotations": rotations.astype(np.float32),
        "shifts": shifts.astype(np.float32),
        "index": np.arange(PARTICLES),
    }


def test_scale_motion_interpolates_to_the_rest_points():
    rest = torch.randn(5, 3)
    points = torch.randn(2, 5, 3)
    torch.testing.assert_close(scale_motion(points, rest, 0.0), rest.expand(2, 5, 3))
    assert scale_motion(points, rest, 1.0) is points
    torch.testing.assert_close(scale_motion(points, rest, 0.5), (points + rest) / 2)


def test_right_models_are_kept_as_learned(setting):
    amplitudes = setting[3]
    trainer = trainer_for(setting, amplitudes)
    held_out = np.arange(0, PARTICLES, 2)
    scale, losses = choose_motion_scale(
        trainer, predictions_of(setting, amplitudes), held_out, SCALES
    )
    assert scale == 1.0
    assert losses[0.0] > losses[0.5] > losses[1.0]  # the reference explains them worst
    assert trainer.module.motion_scale == 1.0  # left as it was


def test_motion_the_images_do_not_show_goes_back_to_the_reference(setting):
    """Particles all in the reference conformation, predictions moved at random by up to
    the amplitudes of the first test: α = 0, the reference itself."""
    amplitudes = setting[3]
    trainer = trainer_for(setting, np.zeros(PARTICLES))
    wrong = amplitudes * np.random.default_rng(2).choice([-1.0, 1.0], PARTICLES)
    scale, losses = choose_motion_scale(
        trainer, predictions_of(setting, wrong), np.arange(PARTICLES), SCALES
    )
    assert scale == 0.0
    assert losses[0.0] < losses[0.5] < losses[1.0]


@pytest.mark.parametrize(
    ("gain", "significance", "expected"),
    [
        (0.5, 2.0, 1.0),  # gain 5 standard errors: the learned motion is kept
        (0.05, 2.0, 0.0),  # 0.5 standard errors: the reference
        (0.05, 0.0, 1.0),  # no test: the lowest mean loss alone
        (0.0, 2.0, 0.0),  # identical losses (no motion learned): the reference
    ],
)
def test_motion_is_kept_only_when_it_beats_the_reference_beyond_the_noise(
    monkeypatch, gain, significance, expected
):
    """100 held-out particles whose loss differences to the reference have sd 1 (one
    standard error 0.1), the learned motion (α = 1) lower by ``gain`` on average."""
    import cryomotion.train.motion_scale as motion_scale

    noise = np.random.default_rng(0).normal(0.0, 1.0, 100)
    noise = (noise - noise.mean()) / noise.std(ddof=1)  # exactly mean 0, sd 1
    reference = np.full(100, 10.0)
    losses = {0.0: reference, 0.5: reference - gain / 2 + noise / 2, 1.0: reference - gain + noise}
    if gain == 0:
        losses = {0.0: reference, 0.5: reference.copy(), 1.0: reference.copy()}
    monkeypatch.setattr(motion_scale, "held_out_losses", lambda *args: losses)
    scale, means = motion_scale.choose_motion_scale(
        None, {}, np.arange(100), [0.0, 0.5, 1.0], significance
    )
    assert scale == expected
    assert means[1.0] == pytest.approx(10.0 - gain)


def test_motion_the_amortized_estimates_do_not_show_is_not_kept(setting):
    """With ``detection`` (the encoder's estimates) the motion must show on those first:
    the particles do move, and the predictions are right, but estimates that show nothing
    (random signs) leave the reference; estimates that show it keep the predictions' α."""
    from types import SimpleNamespace

    from cryomotion.train.run import held_out_motion_scale

    amplitudes = setting[3]
    trainer = trainer_for(setting, amplitudes)
    config = SimpleNamespace(
        model=SimpleNamespace(motion_scales=SCALES, motion_scale_significance=2.0)
    )
    right = predictions_of(setting, amplitudes)
    noise = amplitudes * np.random.default_rng(2).choice([-1.0, 1.0], PARTICLES)
    held_out = np.arange(PARTICLES)
    assert held_out_motion_scale(trainer, right, held_out, config) == 1.0
    assert held_out_motion_scale(trainer, right, held_out, config, right) == 1.0
    blind = predictions_of(setting, noise)
    assert held_out_motion_scale(trainer, right, held_out, config, blind) == 0.0

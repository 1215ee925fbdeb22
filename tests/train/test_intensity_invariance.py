"""Every system trains the same on data in any units (issue 11): with the fitted intensity
scale, the images ×0.1 and ×10 give the same latents, for the L2 system (nma) and the
correlation VAE (segments), and without it (mode "none") they do not."""

import numpy as np
import pytest
import torch

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.deform.segments import SegmentDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import MotionModel
from cryomotion.structure.io import read_model
from cryomotion.systems.registry import get_system
from cryomotion.train.calibrate import calibrate_intensity
from cryomotion.train.config import TrainingConfig
from cryomotion.train.trainer import Trainer

BOX, PIXEL_SIZE, N = 16, 6.0, 48


class Scaled(torch.utils.data.Dataset):
    def __init__(self, dataset, factor):
        self.dataset, self.factor = dataset, factor

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        item = dict(self.dataset[i])
        item["image"] = item["image"] * self.factor
        return item


def build(system, reference, modes, mode):
    torch.manual_seed(0)
    renderer = AtomRenderer.from_model(reference, BOX, PIXEL_SIZE, coarse=True)
    if system == "nma":
        deformation = NormalModeDeformation(reference.coords, modes)
        heads = {"shifts": 2, "latents": 2}
    else:
        deformation = SegmentDeformation.from_model(reference, 3, 2, hidden=(16,))
        heads = {"shifts": 2, "latents": 3, "latent_log_var": 3}
    return MotionModel.with_encoder(
        ImageEncoder(BOX, heads, width=0.25, norm="group"),
        deformation,
        renderer,
        variational=system == "segments",
        intensity=IntensityScale(1, mode),
    )


def latents_after_training(system, tiny_problem, adk_open_path, factor, mode):
    dataset, _ = tiny_problem
    reference = read_model(adk_open_path)
    reference = reference.with_coords(
        reference.coords - reference.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    )
    modes = np.random.default_rng(1).normal(size=(2, reference.n_atoms, 3))
    modes /= np.linalg.norm(modes.reshape(2, -1), axis=1)[:, None, None]
    data = Scaled(dataset, factor)
    model = build(system, reference, modes, mode)
    calibrate_intensity(model, data, np.arange(8, 64))
    settings = TrainingConfig(epochs=2, batch_size=16, lr=1e-3, seed=0, workers=0)
    phases = get_system(system).phases(get_system(system).settings_class(), 2)
    trainer = Trainer(model, data, np.arange(8, 64), np.arange(8), settings,
                      progress=False, schedule=phases)  # fmt: skip
    trainer.fit()
    return trainer.predict(np.arange(64))["latents"]


@pytest.mark.parametrize("system", ["nma", "segments"])
def test_latents_do_not_depend_on_the_images_units(system, tiny_problem, adk_open_path):
    low = latents_after_training(system, tiny_problem, adk_open_path, 0.1, "fitted")
    high = latents_after_training(system, tiny_problem, adk_open_path, 10.0, "fitted")
    spread = np.abs(low).max()
    assert spread > 0
    np.testing.assert_allclose(low, high, atol=1e-3 * spread + 1e-5, rtol=0)


def test_without_the_scale_the_units_change_the_result(tiny_problem, adk_open_path):
    low = latents_after_training("nma", tiny_problem, adk_open_path, 0.1, "none")
    high = latents_after_training("nma", tiny_problem, adk_open_path, 10.0, "none")
    assert np.abs(low - high).max() > 0.1 * np.abs(high).max()

"""Small in-memory particle sets rendered from AdK, for trainer tests (on one CPU thread:
the tensors are small, and on a shared machine spinning OpenMP threads slow them down)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.motion_model import MotionModel
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.structure.io import read_model

BOX, PIXEL_SIZE = 16, 6.0


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TensorParticles(Dataset):
    """Particles held in memory, items as ``ParticleDataset`` returns them."""

    def __init__(self, images, rotations, shifts, ctf):
        self.images = torch.as_tensor(images, dtype=torch.float32)
        self.rotations = torch.as_tensor(rotations, dtype=torch.float32)
        self.shifts = torch.as_tensor(shifts, dtype=torch.float32)
        self.ctf = torch.as_tensor(ctf, dtype=torch.float32)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            "image": self.images[i],
            "rotation": self.rotations[i],
            "shift": self.shifts[i],
            "ctf": self.ctf[i],
            "index": torch.tensor(i, dtype=torch.int64),
        }


@pytest.fixture(scope="session")
def tiny_problem(adk_open_path):
    """(dataset of 64 particles at 16 px, a function making a fresh 2-mode autoencoder)."""
    model = read_model(adk_open_path)
    coords = model.coords - model.coords.mean(0) + (BOX // 2) * PIXEL_SIZE
    model = model.with_coords(coords)
    rng = np.random.default_rng(0)
    modes = rng.normal(size=(2, model.n_atoms, 3))
    modes /= np.linalg.norm(modes.reshape(2, -1), axis=1)[:, None, None]
    n = 64
    rotations = uniform_rotations(n, rng)
    shifts = rng.normal(0, 1.0, (n, 2))
    ctf = np.zeros((n, 8))
    ctf[:, :2] = rng.uniform(8000, 15000, (n, 1))
    ctf[:, 3:6] = (300.0, 2.7, 0.1)
    renderer = AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True)
    amplitudes = rng.normal(0, 40.0, (n, 2))
    deformation = NormalModeDeformation(coords, modes)
    with torch.no_grad():
        images = renderer(
            deformation(torch.as_tensor(amplitudes, dtype=torch.float32)).coords,
            torch.as_tensor(rotations, dtype=torch.float32),
            torch.as_tensor(shifts, dtype=torch.float32),
            torch.as_tensor(ctf, dtype=torch.float32),
        )
    dataset = TensorParticles(images, rotations, shifts, ctf)

    def make_model(seed: int = 0, norm: str = "batch") -> MotionModel:
        torch.manual_seed(seed)
        encoder = ImageEncoder(BOX, {"shifts": 2, "latents": 2}, width=0.25, norm=norm)
        return MotionModel.with_encoder(
            encoder,
            NormalModeDeformation(coords, modes),
            AtomRenderer.from_model(model, BOX, PIXEL_SIZE, coarse=True),
        )

    return dataset, make_model

"""Model tests run on one CPU thread: their tensors are small, and on a shared machine
OpenMP threads that spin at barriers while another process holds the cores slow small
operations down many times over."""

import numpy as np
import pytest
import torch

from cryomotion.imaging.noise import add_white_noise
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.simulate.conformations import uniform_rotations


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ParticleItems(torch.utils.data.Dataset):
    """In-memory particles as the trainer reads them: dicts of image, rotation, shift, ctf
    and index."""

    def __init__(self, images, rotations, shifts, ctf):
        self.items = [
            {
                "image": images[i],
                "rotation": torch.as_tensor(rotations[i], dtype=torch.float32),
                "shift": torch.as_tensor(shifts[i], dtype=torch.float32),
                "ctf": torch.as_tensor(ctf[i], dtype=torch.float32),
                "index": torch.tensor(i),
            }
            for i in range(len(images))
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture(scope="session")
def simulate_particles():
    """A function rendering particles of known conformations for recovery tests.

    ``(model, coords (n, atoms, 3) Å, rng, box, pixel_size, coarse, snr, shift_sd)`` ->
    ``ParticleItems`` with uniform random poses, Gaussian shifts (sd ``shift_sd`` Å), CTFs
    with defocus 0.8-1.5 µm, and white noise at ``snr`` (None: clean). Poses, shifts and
    defocus are drawn from ``rng`` in that order.
    """

    def simulate(model, coords, rng, box, pixel_size, coarse, snr, shift_sd):
        n = len(coords)
        rotations = uniform_rotations(n, rng)
        shifts = rng.normal(0, shift_sd, (n, 2))
        ctf = np.zeros((n, 8))
        ctf[:, :2] = rng.uniform(8000, 15000, (n, 1))
        ctf[:, 3:6] = (300.0, 2.7, 0.1)
        renderer = AtomRenderer.from_model(model, box, pixel_size, coarse=coarse)
        with torch.no_grad():
            images = renderer(
                torch.as_tensor(coords, dtype=torch.float32),
                torch.as_tensor(rotations, dtype=torch.float32),
                torch.as_tensor(shifts, dtype=torch.float32),
                torch.as_tensor(ctf, dtype=torch.float32),
            )
            if snr:
                generator = torch.Generator().manual_seed(1)
                images = add_white_noise(images, snr, generator=generator)
        return ParticleItems(images, rotations, shifts, ctf)

    return simulate

"""Model tests run on one CPU thread: their tensors are small, and on a shared machine
OpenMP threads that spin at barriers while another process holds the cores slow small
operations down many times over."""

import pytest
import torch


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


@pytest.fixture
def particle_items():
    """The ``ParticleItems`` dataset class."""
    return ParticleItems

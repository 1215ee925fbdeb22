"""A torch Dataset of particle images with their poses and CTF parameters, read lazily."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from cryomotion.data.downsample import downsample_image
from cryomotion.data.particles import ParticleTable
from cryomotion.data.stack import StackReader
from cryomotion.errors import InputError


class ParticleDataset(Dataset):
    """Particles of a ``ParticleTable``, one image at a time from memory-mapped stacks.

    Each item is a dict of tensors:

    - ``image``: float32 (box, box), rows = y, columns = x, as stored in the stack
      (multiplied by -1 when ``invert_contrast``), Fourier-downsampled when ``box`` is
      smaller than the stacks' box (see ``cryomotion.data.downsample``);
    - ``rotation``: float32 (3, 3), model → microscope;
    - ``shift``: float32 (2,), Å, image = projection translated by +shift;
    - ``ctf``: float32 (8,), in ``CTF_FIELDS`` order;
    - ``pixel_size``: float32 scalar, the image's effective pixel size (Å/px);
    - ``index``: int64 scalar, the particle's row in the table;
    - ``optics_group``: int64 scalar, 0-based index into the table's distinct optics group
      numbers, in increasing order (see ``n_optics_groups``).

    ``invert_contrast`` is for stacks with dark particles (cryoDRGN's default data sign);
    cryomotion's CTF has RELION's sign and expects RELION-style white particles.
    Works with DataLoader workers: each worker process opens its own file maps.
    """

    def __init__(self, table: ParticleTable, box: int | None = None, invert_contrast: bool = False):
        self.table = table
        self.box = table.box_size if box is None else int(box)
        if self.box > table.box_size or self.box <= 0 or self.box % 2:
            raise InputError(
                f"{table.source}: downsampling box {self.box} must be even, positive and at "
                f"most the stacks' box of {table.box_size} pixels"
            )
        self.invert_contrast = bool(invert_contrast)
        self.scale = table.box_size / self.box
        self._rotations = table.rotations.astype(np.float32)
        self._shifts = table.shifts.astype(np.float32)
        self._ctf = table.ctf.astype(np.float32)
        self._pixel_sizes = (table.pixel_size * self.scale).astype(np.float32)
        self.optics_group_numbers, self._groups = np.unique(table.optics_group, return_inverse=True)
        self._reader = StackReader()

    @property
    def pixel_size(self) -> float:
        """Effective pixel size (Å/px) of the returned images; InputError if several."""
        return self.table.single_pixel_size * self.scale

    @property
    def n_optics_groups(self) -> int:
        return len(self.optics_group_numbers)

    def __len__(self) -> int:
        return len(self.table)

    def image(self, index: int) -> np.ndarray:
        """The processed image (box, box) float32 of particle ``index``."""
        image = self._reader.read(
            self.table.image_files[index], int(self.table.image_indices[index])
        )
        if self.box != self.table.box_size:
            image = downsample_image(image, self.box)
        if self.invert_contrast:
            image = -image
        return image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"particle {index} out of range for {len(self)} particles")
        index %= len(self)
        return {
            "image": torch.from_numpy(self.image(index)),
            "rotation": torch.tensor(self._rotations[index]),
            "shift": torch.tensor(self._shifts[index]),
            "ctf": torch.tensor(self._ctf[index]),
            "pixel_size": torch.tensor(self._pixel_sizes[index]),
            "index": torch.tensor(index, dtype=torch.int64),
            "optics_group": torch.tensor(self._groups[index], dtype=torch.int64),
        }

    def close(self) -> None:
        """Close this process's open stacks."""
        self._reader.close()

"""A torch Dataset of particle images with their poses and CTF parameters, read lazily."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cryomotion.data.downsample import downsample_image
from cryomotion.data.particles import ParticleTable
from cryomotion.data.stack import StackReader, check_finite
from cryomotion.errors import InputError

# Preloading refuses to use more than this fraction of the memory the system has available.
PRELOAD_MEMORY_FRACTION = 0.8
# Images read per stack read while preloading.
_PRELOAD_CHUNK = 4096


def available_memory_bytes() -> int:
    """Memory the system can give a process without swapping (Linux ``MemAvailable``);
    the physical memory where /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class ParticleDataset(Dataset):
    """Particles of a ``ParticleTable``, read lazily from their stacks or preloaded.

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

    ``__getitems__`` (which a DataLoader with a batch sampler calls with a whole batch)
    returns the same items for a list of indices, reading each stack's images of the batch
    with one sorted read and downsampling them together. ``preload`` reads every image
    into one in-memory array first (in the stacks' data type: float16 stays float16),
    refusing with an InputError if it would take more than ``PRELOAD_MEMORY_FRACTION`` of
    the available memory; items are the same either way.

    ``invert_contrast`` is for stacks with dark particles (cryoDRGN's default data sign);
    cryomotion's CTF has RELION's sign and expects RELION-style white particles.
    Works with DataLoader workers: each worker process opens its own files.
    """

    def __init__(
        self,
        table: ParticleTable,
        box: int | None = None,
        invert_contrast: bool = False,
        preload: bool = False,
    ):
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
        # each particle's stack as a small integer: grouping a batch by stack is cheap
        codes, files = pd.factorize(pd.Series(table.image_files, dtype=object))
        self._stack_codes = codes.astype(np.int32)
        self._stack_files = [str(name) for name in files]
        self._reader = StackReader()
        self._images_in_memory: np.ndarray | None = None
        if preload:
            self._images_in_memory = self._preload()

    @property
    def preloaded(self) -> bool:
        """True when the images are held in memory."""
        return self._images_in_memory is not None

    @property
    def pixel_size(self) -> float:
        """Effective pixel size (Å/px) of the returned images; InputError if several."""
        return self.table.single_pixel_size * self.scale

    @property
    def n_optics_groups(self) -> int:
        return len(self.optics_group_numbers)

    def __len__(self) -> int:
        return len(self.table)

    def _preload(self) -> np.ndarray:
        """All images, in table order, as stored (float16 if every stack is float16)."""
        n, size = len(self), self.table.box_size
        dtypes = {self._reader.stack(name).dtype for name in self._stack_files}
        dtype = np.dtype(np.float16) if dtypes == {np.dtype(np.float16)} else np.dtype(np.float32)
        needed = n * size * size * dtype.itemsize
        available = available_memory_bytes()
        if needed > PRELOAD_MEMORY_FRACTION * available:
            raise InputError(
                f"{self.table.source}: preloading {n} images of {size}x{size} {dtype} needs "
                f"{needed / 2**30:.1f} GiB but {available / 2**30:.1f} GiB of memory is "
                "available; train from the stack files instead (no --preload / data.preload)"
            )
        images = np.empty((n, size, size), dtype=dtype)
        order = np.argsort(self._stack_codes, kind="stable")
        bounds = np.flatnonzero(np.diff(self._stack_codes[order])) + 1
        for rows in np.split(order, bounds):
            name = self._stack_files[self._stack_codes[rows[0]]]
            indices = self.table.image_indices[rows]
            for start in range(0, len(rows), _PRELOAD_CHUNK):
                part = slice(start, start + _PRELOAD_CHUNK)
                stored = self._reader.read_stored(name, indices[part])
                check_finite(stored, name, indices[part])
                images[rows[part]] = stored
        self._reader.close()
        return images

    def images(self, indices) -> np.ndarray:
        """The processed images (k, box, box) float32 of particles ``indices`` (k,)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self._images_in_memory is not None:
            images = self._images_in_memory[indices].astype(np.float32)
        else:
            images = np.empty((len(indices), self.table.box_size, self.table.box_size), np.float32)
            codes = self._stack_codes[indices]
            for code in np.unique(codes):
                where = np.flatnonzero(codes == code)
                images[where] = self._reader.read_many(
                    self._stack_files[code], self.table.image_indices[indices[where]]
                )
        if self.box != self.table.box_size:
            images = downsample_image(images, self.box)
        if self.invert_contrast:
            images = np.negative(images, out=images)
        return images

    def image(self, index: int) -> np.ndarray:
        """The processed image (box, box) float32 of particle ``index``."""
        return self.images([index])[0]

    def _checked(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = (indices < -len(self)) | (indices >= len(self))
        if bad.any():
            index = int(indices[np.flatnonzero(bad)[0]])
            raise IndexError(f"particle {index} out of range for {len(self)} particles")
        return indices % max(len(self), 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([int(index)])[0]

    def __getitems__(self, indices) -> list[dict[str, torch.Tensor]]:
        """The items of particles ``indices`` (a list), in that order."""
        indices = self._checked(indices)
        columns = {
            "image": torch.from_numpy(self.images(indices)),
            "rotation": torch.from_numpy(self._rotations[indices]),
            "shift": torch.from_numpy(self._shifts[indices]),
            "ctf": torch.from_numpy(self._ctf[indices]),
            "pixel_size": torch.from_numpy(self._pixel_sizes[indices]),
            "index": torch.from_numpy(indices),
            "optics_group": torch.from_numpy(self._groups[indices].astype(np.int64)),
        }
        rows = {key: value.unbind(0) for key, value in columns.items()}
        return [{key: rows[key][k] for key in columns} for k in range(len(indices))]

    def close(self) -> None:
        """Close this process's open stacks."""
        self._reader.close()

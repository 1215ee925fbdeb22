"""MRC particle stacks: header checks, lazy memory-mapped reading, chunked writing.

A stack is an MRC file (``.mrcs`` or ``.mrc``) holding ``n_images`` square images of
``box`` × ``box`` pixels (data array ``(n_images, box, box)``, rows = y, columns = x), or
a single 2D image. Pixels are read as float32 whatever the file's real mode (float32,
float16, int8, int16, uint16); integer stacks are read as they are, in counts, with a
warning once per file. A 3-D map (``.mrc`` with space group 1 and nz > 1) is refused as a
volume; gzip- or bzip2-compressed files are refused with a message saying so (they cannot
be memory-mapped).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
from mrcfile.utils import data_dtype_from_header

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError

log = logging.getLogger(__name__)

_HEADER_BYTES = 1024
_REAL_MODES = (0, 1, 2, 6, 12)
_INTEGER_MODES = {0: "int8", 1: "int16", 6: "uint16"}
# Compression magic bytes -> the name and the command that undoes it.
_COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip"), b"BZh": ("bzip2", "bunzip2")}
# Space group of a single volume in MRC2014 (image stacks have 0, volume stacks 401).
_VOLUME_SPACE_GROUP = 1
# Stacks whose integer mode was already reported in this process.
_WARNED_INTEGER: set[str] = set()


class ImageValueError(InputError):
    """An InputError met while reading pixels (NaN or infinite values).

    It stays a one-line message when a DataLoader worker re-raises it in the main
    process: torch rebuilds the exception as ``type(message)`` with its own text and the
    worker's traceback, from which the original message is recovered here.
    """

    def __init__(self, message: str):
        text = str(message)
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in text and marker in text:
            text = text.rsplit(marker, 1)[1]
        super().__init__(text)


def _warn_integer_mode(path: str, mode: int) -> None:
    if mode in _INTEGER_MODES and path not in _WARNED_INTEGER:
        _WARNED_INTEGER.add(path)
        log.warning(
            "%s: MRC mode %d (%s) stack read as-is, in counts, converted to float32 without "
            "normalisation",
            path,
            mode,
            _INTEGER_MODES[mode],
        )


@dataclass(frozen=True)
class StackHeader:
    """What a stack's header says.

    ``voxel_size`` is in Å/px, 0.0 when the header leaves it unset.
    """

    path: str
    n_images: int
    box: int
    voxel_size: float
    mode: int


def read_stack_header(path: str | os.PathLike) -> StackHeader:
    """Read and check a stack's header (no pixel data is read).

    Raises InputError naming the file when it is missing, compressed, not an MRC file,
    holds complex data or non-square images, is a 3-D map rather than a stack, or is
    shorter than its header says. Logs a warning (once per file) for an integer mode.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: particle stack not found")
    with open(path, "rb") as file:
        magic = file.read(3)
    for prefix, (kind, command) in _COMPRESSED.items():
        if magic.startswith(prefix):
            raise InputError(
                f"{path}: the stack is {kind}-compressed; expected an uncompressed MRC stack "
                f"(decompress it first, e.g. {command} -k)"
            )
    try:
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            header = mrc.header
            nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
            mode = int(header.mode)
            extended = int(header.nsymbt)
            space_group = int(header.ispg)
            voxel_size = float(mrc.voxel_size.x)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable MRC stack ({exc})") from exc
    if mode not in _REAL_MODES:
        raise InputError(
            f"{path}: MRC mode {mode} is not a real-valued image mode "
            "(expected float32, float16, int8, int16 or uint16)"
        )
    if nx != ny or nx <= 0 or nz <= 0:
        raise InputError(f"{path}: images are {nx}x{ny}x{nz}; expected square images")
    if nz > 1 and space_group == _VOLUME_SPACE_GROUP and not path.lower().endswith(".mrcs"):
        raise InputError(
            f"{path}: this is a 3-D volume ({nx}x{ny}x{nz}, MRC space group 1), not an image "
            "stack; expected a particle stack (space group 0, usually .mrcs)"
        )
    itemsize = np.dtype(data_dtype_from_header(header)).itemsize
    needed = _HEADER_BYTES + extended + nx * ny * nz * itemsize
    size = os.path.getsize(path)
    if size < needed:
        raise InputError(
            f"{path}: file is truncated ({size} bytes; its header promises {nz} images "
            f"of {nx}x{ny} pixels, {needed} bytes)"
        )
    _warn_integer_mode(path, mode)
    return StackHeader(path=path, n_images=nz, box=nx, voxel_size=voxel_size, mode=mode)


class StackReader:
    """Lazy reader of single images from many stacks.

    Stacks are memory-mapped (``mrcfile.mmap``) on first use and kept open in a
    least-recently-used cache of ``max_open`` files. The cache belongs to one process:
    after a fork (DataLoader workers) the child opens its own maps, and pickling the
    reader (spawned workers) drops the cache.
    """

    def __init__(self, max_open: int = 256):
        self.max_open = int(max_open)
        self._open: OrderedDict[str, mrcfile.mrcmemmap.MrcMemmap] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self):
        return {"max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(state["max_open"])

    def _stack(self, path: str) -> np.ndarray:
        if self._pid != os.getpid():
            # Forked: the parent's maps are not ours to use or close.
            self._open = OrderedDict()
            self._pid = os.getpid()
        mrc = self._open.get(path)
        if mrc is None:
            mrc = mrcfile.mmap(path, mode="r", permissive=True)
            _warn_integer_mode(path, int(mrc.header.mode))
            self._open[path] = mrc
            if len(self._open) > self.max_open:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
        else:
            self._open.move_to_end(path)
        return mrc.data

    def read(self, path: str, index: int) -> np.ndarray:
        """Image ``index`` (0-based) of stack ``path`` as a float32 (box, box) array.

        Raises ImageValueError (an InputError, one line also from a DataLoader worker)
        naming the stack and index if a pixel is NaN or infinite.
        """
        data = self._stack(path)
        if data.ndim == 2:
            if index != 0:
                raise IndexError(f"{path} holds one image; index {index} is out of range")
            image = data
        else:
            image = data[index]
        image = np.array(image, dtype=np.float32)
        if not np.isfinite(image).all():
            raise ImageValueError(
                f"{path}: image {index} (0-based; {index + 1:06d}@ in RELION) has NaN or "
                "infinite pixels; expected finite values"
            )
        return image

    def close(self) -> None:
        """Close every open map of this process."""
        if self._pid == os.getpid():
            for mrc in self._open.values():
                mrc.close()
        self._open = OrderedDict()


class StackWriter:
    """Write a float32 ``.mrcs`` stack chunk by chunk, never holding it in memory.

    The stack is created as a memory-mapped temporary file beside ``path`` and renamed
    onto ``path`` by ``close()`` (or on leaving a ``with`` block without error); an
    error or ``abort()`` removes the temporary file. The header's voxel size is
    ``pixel_size`` (Å/px) and its statistics are those of the written images.

    Example::

        with StackWriter("particles.mrcs", n_images=1000, box=128, pixel_size=1.2) as out:
            for start in range(0, 1000, 100):
                out.write(start, images_chunk)  # (100, 128, 128)
    """

    def __init__(self, path: str | os.PathLike, n_images: int, box: int, pixel_size: float):
        self.path = Path(path)
        self.n_images = int(n_images)
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        if self.n_images <= 0 or self.box <= 0 or self.pixel_size <= 0:
            raise ValueError(
                f"StackWriter needs positive n_images, box and pixel_size, got "
                f"{self.n_images}, {self.box}, {self.pixel_size}"
            )
        self._exit = contextlib.ExitStack()
        tmp = self._exit.enter_context(atomic_path(self.path))
        try:
            self._mrc = mrcfile.new_mmap(
                tmp, shape=(self.n_images, self.box, self.box), mrc_mode=2, overwrite=True
            )
        except BaseException:
            self._exit.close()
            raise
        self._mrc.set_image_stack()
        self._mrc.voxel_size = self.pixel_size
        self._min, self._max = np.inf, -np.inf
        self._sum = self._sum_squares = 0.0
        self._count = 0

    def write(self, start: int, images: np.ndarray) -> None:
        """Write ``images`` (k, box, box) at stack positions ``start`` … ``start + k - 1``."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != (self.box, self.box):
            raise ValueError(f"images of shape {images.shape[1:]}, expected {(self.box,) * 2}")
        stop = start + len(images)
        if start < 0 or stop > self.n_images:
            raise ValueError(f"images {start}..{stop - 1} outside the stack of {self.n_images}")
        self._mrc.data[start:stop] = images
        self._min = min(self._min, float(images.min()))
        self._max = max(self._max, float(images.max()))
        self._sum += float(images.sum(dtype=np.float64))
        self._sum_squares += float(np.square(images, dtype=np.float64).sum())
        self._count += images.size

    def close(self) -> None:
        """Finish the header, flush, and rename the stack onto its path."""
        if self._count:
            mean = self._sum / self._count
            header = self._mrc.header
            header.dmin, header.dmax, header.dmean = self._min, self._max, mean
            header.rms = np.sqrt(max(self._sum_squares / self._count - mean**2, 0.0))
        self._mrc.close()
        self._exit.close()

    def abort(self) -> None:
        """Discard the stack: nothing is written at ``path``."""
        self._mrc.close()
        self._exit.__exit__(RuntimeError, RuntimeError("stack aborted"), None)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

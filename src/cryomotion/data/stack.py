"""MRC particle stacks: header checks, lazy batched reading, chunked writing.

A stack is an MRC file (``.mrcs`` or ``.mrc``) holding ``n_images`` square images of
``box`` × ``box`` pixels (data array ``(n_images, box, box)``, rows = y, columns = x), or
a single 2D image. Pixels are read as float32 whatever the file's real mode (float32,
float16, int8, int16, uint16); integer stacks are read as they are, in counts, with a
warning once per file. A 3-D map (``.mrc`` with space group 1 and nz > 1) is refused as a
volume; gzip- or bzip2-compressed files are refused with a message saying so (they cannot
be read image by image).
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
    """Lazy reader of images from many stacks, one image or a batch at a time.

    Pixels are read with ``os.pread`` from file descriptors kept open in a
    least-recently-used cache of ``max_open`` files, never from a memory map: the pages of
    a mapped file count in the process's resident set while they stay mapped, so an epoch
    over a memory-mapped 8 GB stack would show 8 GB resident, whereas pages read with
    ``pread`` stay in the kernel's page cache, shared and reclaimable. The cache belongs to
    one process: after a fork (DataLoader workers) the child opens its own files, and
    pickling the reader (spawned workers) drops the cache.
    """

    def __init__(self, max_open: int = 256):
        self.max_open = int(max_open)
        self._open: OrderedDict[str, _OpenStack] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self):
        return {"max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(state["max_open"])

    def stack(self, path: str) -> _OpenStack:
        """The open stack ``path`` (opened on first use; its header is checked then)."""
        if self._pid != os.getpid():
            # Forked: the parent's descriptors are not ours to close.
            self._open = OrderedDict()
            self._pid = os.getpid()
        stack = self._open.get(path)
        if stack is None:
            stack = _OpenStack.open(path)
            self._open[path] = stack
            if len(self._open) > self.max_open:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
        else:
            self._open.move_to_end(path)
        return stack

    def read_stored(self, path: str, indices) -> np.ndarray:
        """Images ``indices`` (k,) (0-based, any order, repeats allowed) of stack ``path``
        as (k, box, box) in the stack's own data type (float16 for MRC mode 12).

        The indices are sorted and each run of consecutive images is read with one
        ``pread``; the images come back in the order asked. No pixel check (see ``read_many``).
        """
        stack = self.stack(path)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(indices), stack.box, stack.box), dtype=stack.dtype)
        if not len(indices):
            return out
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= stack.n_images:
            bad = low if low < 0 else high
            raise IndexError(f"{path} holds {stack.n_images} images; index {bad} is out of range")
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        # runs of consecutive (or repeated) images: one read each
        breaks = np.flatnonzero(np.diff(ordered) > 1) + 1
        for first, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)]):
            start_image, end_image = int(ordered[first]), int(ordered[stop - 1]) + 1
            block = stack.read_block(start_image, end_image)
            out[order[first:stop]] = block[ordered[first:stop] - start_image]
        return out

    def read_many(self, path: str, indices) -> np.ndarray:
        """Images ``indices`` (k,) of stack ``path`` as float32 (k, box, box), in that order.

        Raises ImageValueError (an InputError, one line also from a DataLoader worker)
        naming the stack and the first index whose image has NaN or infinite pixels.
        """
        images = self.read_stored(path, indices).astype(np.float32, copy=False)
        check_finite(images, path, indices)
        return images

    def read(self, path: str, index: int) -> np.ndarray:
        """Image ``index`` (0-based) of stack ``path`` as a float32 (box, box) array.

        Raises ImageValueError as ``read_many`` does.
        """
        return self.read_many(path, [index])[0]

    def close(self) -> None:
        """Close every open stack of this process."""
        if self._pid == os.getpid():
            for stack in self._open.values():
                stack.close()
        self._open = OrderedDict()


def check_finite(images: np.ndarray, path: str, indices) -> None:
    """Raise ImageValueError naming ``path`` and the image index (of ``indices``, one per
    image of ``images`` (k, box, box)) of the first image with NaN or infinite pixels."""
    finite = np.isfinite(images).all(axis=(-2, -1))
    if not finite.all():
        index = int(np.asarray(indices).reshape(-1)[np.flatnonzero(~finite)[0]])
        raise ImageValueError(
            f"{path}: image {index} (0-based; {index + 1:06d}@ in RELION) has NaN or "
            "infinite pixels; expected finite values"
        )


@dataclass
class _OpenStack:
    """One stack's file descriptor and the layout of its pixels."""

    path: str
    descriptor: int
    data_offset: int  # bytes before the first image
    dtype: np.dtype
    n_images: int
    box: int

    @classmethod
    def open(cls, path: str) -> _OpenStack:
        header = read_stack_header(path)
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            dtype = np.dtype(data_dtype_from_header(mrc.header))
            extended = int(mrc.header.nsymbt)
        descriptor = os.open(path, os.O_RDONLY)
        return cls(path, descriptor, _HEADER_BYTES + extended, dtype, header.n_images, header.box)

    @property
    def image_bytes(self) -> int:
        return self.box * self.box * self.dtype.itemsize

    def read_block(self, start: int, stop: int) -> np.ndarray:
        """Images ``start`` … ``stop - 1`` as stored, (stop - start, box, box)."""
        size = (stop - start) * self.image_bytes
        data = os.pread(self.descriptor, size, self.data_offset + start * self.image_bytes)
        if len(data) != size:
            raise InputError(
                f"{self.path}: file ends before image {stop - 1}; expected a full stack"
            )
        return np.frombuffer(data, dtype=self.dtype).reshape(stop - start, self.box, self.box)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.descriptor)


# the data types a stack may be written in, and their MRC modes
STACK_DTYPES = {"float32": 2, "float16": 12}


class StackWriter:
    """Write a float32 or float16 ``.mrcs`` stack chunk by chunk, never holding it in memory.

    The stack is created as a temporary file beside ``path`` and renamed onto ``path`` by
    ``close()`` (or on leaving a ``with`` block without error); an error or ``abort()``
    removes the temporary file. Chunks are written with ``os.pwrite``, not through a memory
    map, so that the process's resident memory does not grow with the stack. ``dtype``
    ``"float16"`` writes MRC mode 12 (half the disk space; 11 significant bits, values up
    to 65504), ``"float32"`` mode 2. The header's voxel size is ``pixel_size`` (Å/px) and its
    statistics are those of the written (rounded) images.

    Example::

        with StackWriter("particles.mrcs", n_images=1000, box=128, pixel_size=1.2) as out:
            for start in range(0, 1000, 100):
                out.write(start, images_chunk)  # (100, 128, 128)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_images: int,
        box: int,
        pixel_size: float,
        dtype: str = "float32",
    ):
        self.path = Path(path)
        self.n_images = int(n_images)
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        if self.n_images <= 0 or self.box <= 0 or self.pixel_size <= 0:
            raise ValueError(
                f"StackWriter needs positive n_images, box and pixel_size, got "
                f"{self.n_images}, {self.box}, {self.pixel_size}"
            )
        if dtype not in STACK_DTYPES:
            raise ValueError(
                f"stack data type {dtype!r}; expected one of {', '.join(STACK_DTYPES)}"
            )
        self.dtype = np.dtype(dtype)
        self._exit = contextlib.ExitStack()
        self._tmp = self._exit.enter_context(atomic_path(self.path))
        try:
            # the header and a file of the full size (sparse until written)
            with mrcfile.new_mmap(
                self._tmp,
                shape=(self.n_images, self.box, self.box),
                mrc_mode=STACK_DTYPES[dtype],
                overwrite=True,
            ) as mrc:
                mrc.set_image_stack()
                mrc.voxel_size = self.pixel_size
                self._data_offset = _HEADER_BYTES + int(mrc.header.nsymbt)
            self._descriptor = os.open(self._tmp, os.O_RDWR)
        except BaseException:
            self._exit.close()
            raise
        self._image_bytes = self.box * self.box * self.dtype.itemsize
        self._min, self._max = np.inf, -np.inf
        self._sum = self._sum_squares = 0.0
        self._count = 0

    def write(self, start: int, images: np.ndarray) -> None:
        """Write ``images`` (k, box, box) at stack positions ``start`` … ``start + k - 1``.

        Raises ValueError if an image does not fit the stack's data type (a value beyond
        float16's range of ±65504).
        """
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.shape[1:] != (self.box, self.box):
            raise ValueError(f"images of shape {images.shape[1:]}, expected {(self.box,) * 2}")
        stop = start + len(images)
        if start < 0 or stop > self.n_images:
            raise ValueError(f"images {start}..{stop - 1} outside the stack of {self.n_images}")
        with np.errstate(over="ignore"):  # overflow is reported below
            stored = np.ascontiguousarray(images, dtype=self.dtype)
        if self.dtype != np.float32 and not np.isfinite(stored).all() and np.isfinite(images).all():
            raise ValueError(
                f"images {start}..{stop - 1} exceed the {self.dtype} range (|value| up to "
                f"{float(np.abs(images).max()):.3g}); write the stack as float32"
            )
        os.pwrite(self._descriptor, stored.tobytes(), self._data_offset + start * self._image_bytes)
        values = stored.astype(np.float32, copy=False)
        self._min = min(self._min, float(values.min()))
        self._max = max(self._max, float(values.max()))
        self._sum += float(values.sum(dtype=np.float64))
        self._sum_squares += float(np.square(values, dtype=np.float64).sum())
        self._count += values.size

    def close(self) -> None:
        """Finish the header, flush, and rename the stack onto its path."""
        os.close(self._descriptor)
        if self._count:
            mean = self._sum / self._count
            with mrcfile.mmap(self._tmp, mode="r+", permissive=True) as mrc:
                header = mrc.header
                header.dmin, header.dmax, header.dmean = self._min, self._max, mean
                header.rms = np.sqrt(max(self._sum_squares / self._count - mean**2, 0.0))
        self._exit.close()

    def abort(self) -> None:
        """Discard the stack: nothing is written at ``path``."""
        with contextlib.suppress(OSError):
            os.close(self._descriptor)
        self._exit.__exit__(RuntimeError, RuntimeError("stack aborted"), None)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

"""Image locations: stack names resolved against the dataset folder and checked against
the stacks' headers.

A metadata file names its stacks relative to a dataset folder: ``dataset_dir`` when
given (the RELION or cryoSPARC project directory), else the folder of the metadata file.
Absolute names and names leading up through ``..`` are accepted, as RELION and cryoDRGN
accept them (cryomotion writes STAR files whose image names are relative to the STAR
file's own folder, ``..`` included). Whatever a name points to must be a regular file
with a valid MRC header, so a metadata file cannot make cryomotion read a device, a pipe
or a file that is not an image stack.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryomotion.data.stack import read_stack_header
from cryomotion.errors import InputError

log = logging.getLogger(__name__)

# Relative disagreement between a metadata pixel size and a stack header's voxel size
# above which a warning is logged (the metadata's pixel size is used, as RELION does).
PIXEL_SIZE_TOLERANCE = 0.01

# How many folders above the dataset folder are searched for a missing stack, to suggest
# the right dataset_dir in the error message (RELION jobs sit two levels down).
_HINT_LEVELS = 3


@dataclass(frozen=True)
class ImageLocations:
    """Where each particle's image is.

    ``image_files`` (N,) object array of absolute stack paths; ``image_indices`` (N,)
    0-based indices in those stacks; ``optics_group`` (N,) int or None and ``star`` (raw
    STAR blocks) or None when the source carries them; ``source`` the file read.
    """

    image_files: np.ndarray
    image_indices: np.ndarray
    source: str
    optics_group: np.ndarray | None = None
    star: dict | None = None

    def __len__(self) -> int:
        return len(self.image_indices)


def dataset_folder(metadata_path: str | os.PathLike, dataset_dir=None) -> str:
    """The folder stack names are relative to: ``dataset_dir``, else the metadata's folder."""
    base = dataset_dir if dataset_dir is not None else Path(metadata_path).parent
    base = os.path.normpath(os.path.abspath(base))
    if not os.path.isdir(base):
        raise InputError(f"{base}: dataset folder not found (expected a directory)")
    return base


def resolve_stack_names(names, base: str, source: str, field: str) -> np.ndarray:
    """Absolute paths (N,) object array of the stack ``names`` (N,) relative to folder
    ``base`` (absolute names are taken as they are).

    Raises InputError naming ``source`` and ``field`` for an empty name and for a stack
    that is not a regular file (suggesting ``dataset_dir`` when a folder above ``base``
    holds it).
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(names, dtype=object), dtype=object))
    resolved = [_resolve(str(name).strip(), base, source, field) for name in uniques]
    return np.asarray(resolved, dtype=object)[codes]


def _resolve(name: str, base: str, source: str, field: str) -> str:
    if not name:
        raise InputError(f"{source}: empty stack name in {field}; expected a file name")
    full = os.path.normpath(os.path.join(base, name))
    if not os.path.isfile(full):
        where = "" if os.path.isabs(name) else f" in {base}"
        if os.path.exists(full):
            raise InputError(
                f"{source}: {field} {name!r} is not a regular file; expected an MRC stack"
            )
        message = f"{source}: stack {name!r} named in {field} not found{where}"
        parents = [] if os.path.isabs(name) else Path(base).parents
        for level, parent in enumerate(parents):
            if level == _HINT_LEVELS:
                break
            if os.path.isfile(os.path.join(parent, name)):
                message += f"; it exists under {parent}: pass dataset_dir / --dataset-dir {parent}"
                break
        raise InputError(message)
    return full


def check_stacks(
    image_files: np.ndarray,
    image_indices: np.ndarray,
    pixel_size: np.ndarray,
    source: str,
    pixel_size_field: str = "pixel size",
) -> int:
    """Check every stack against what ``source`` says of it; return the common box size.

    Reads each stack's header once. Raises InputError naming ``source``, the stack and
    the index when an index is beyond the stack's end or when stacks differ in box size.
    Where ``pixel_size`` (N,) Å/px differs from a header's voxel size by more than
    ``PIXEL_SIZE_TOLERANCE`` (an unset voxel size, 0, is not checked), a warning naming
    both values and the stack is logged and the metadata's pixel size stands: RELION
    takes the optics table's and ignores the header.
    """
    if len(image_indices) == 0:
        raise InputError(f"{source}: no particles; expected at least one")
    indices = np.asarray(image_indices, dtype=np.int64)
    pixel_size = np.asarray(pixel_size, dtype=np.float64)
    if indices.min() < 0:
        row = int(np.argmin(indices))
        raise InputError(f"{source}: particle {row} has image index {indices[row]}; expected >= 0")
    codes, files = pd.factorize(pd.Series(np.asarray(image_files, dtype=object), dtype=object))
    count = len(files)
    last = np.full(count, -1, dtype=np.int64)
    np.maximum.at(last, codes, indices)
    smallest = np.full(count, np.inf)
    np.minimum.at(smallest, codes, pixel_size)
    largest = np.full(count, -np.inf)
    np.maximum.at(largest, codes, pixel_size)
    box, first = None, None
    for k, path in enumerate(files):
        header = read_stack_header(path)
        if last[k] >= header.n_images:
            raise InputError(
                f"{source}: image index {last[k]} (0-based; {last[k] + 1:06d}@ in RELION) is "
                f"beyond the end of stack {path}, which holds {header.n_images} images"
            )
        if box is None:
            box, first = header.box, path
        elif header.box != box:
            raise InputError(
                f"{source}: stack {path} holds {header.box}-pixel images but {first} holds "
                f"{box}-pixel images; expected one box size"
            )
        if header.voxel_size > 0:
            for value in (smallest[k], largest[k]):
                if abs(header.voxel_size - value) > PIXEL_SIZE_TOLERANCE * value:
                    log.warning(
                        "%s: %s %g Å differs from the header voxel size %g Å of %s; "
                        "using %g Å (the header is ignored, as RELION does)",
                        source,
                        pixel_size_field,
                        value,
                        header.voxel_size,
                        path,
                        value,
                    )
                    break
    return int(box)


def stack_images(path: str | os.PathLike, dataset_dir=None) -> ImageLocations:
    """All images of a stack (``.mrcs``/``.mrc``) or of a ``.txt`` list of stacks, in order.

    A ``.txt`` list names one stack per line (blank lines and ``#`` comments skipped),
    relative to ``dataset_dir`` or the list's folder, as cryoDRGN reads it.
    """
    path = Path(path)
    source = str(path)
    if path.suffix.lower() == ".txt":
        base = dataset_folder(path, dataset_dir)
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read the stack list ({exc})") from exc
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not names:
            raise InputError(f"{path}: empty stack list; expected one stack path per line")
        stacks = resolve_stack_names(names, base, source, "a line")
    else:
        stacks = np.asarray([os.path.abspath(path)], dtype=object)
    files, indices = [], []
    for stack in stacks:
        header = read_stack_header(stack)
        files.append(np.full(header.n_images, stack, dtype=object))
        indices.append(np.arange(header.n_images, dtype=np.int64))
    return ImageLocations(np.concatenate(files), np.concatenate(indices), source)

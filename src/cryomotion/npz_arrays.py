"""Reading ``.npz`` files a user could have written or replaced, with one-line errors.

``load_arrays`` opens the file with ``allow_pickle=False`` (no code runs from it), reads
only the arrays asked for and checks each one: present, plain data (numbers or booleans;
text where asked), and of the expected shape. Anything else is an ``InputError`` naming
the file, the array and what was expected, never a traceback.

A shape is a tuple of dimensions: an int (that size), None (any size) or a name such as
``"particles"`` (any size, the same for every array that names it), e.g.
``{"shifts": ("particles", 2), "particle_index": ("particles",)}``. An int alone is a
number of dimensions (``2`` is ``(None, None)``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryomotion.errors import InputError

Dim = int | str | None

NUMERIC = "numeric"  # bool, integer or floating point
INTEGER = "integer"  # bool or integer
TEXT = "text"  # a str array (e.g. a 0-d label)

_KINDS = {NUMERIC: "biuf", INTEGER: "biu", TEXT: "U"}
_KIND_WORDS = {NUMERIC: "numbers", INTEGER: "integers", TEXT: "text"}


@dataclass(frozen=True)
class Array:
    """What one array must be: its ``shape`` (see the module docstring) and ``kind``."""

    shape: tuple[Dim, ...] | int | None = None
    kind: str = NUMERIC

    def dims(self) -> tuple[Dim, ...] | None:
        if self.shape is None:
            return None
        if isinstance(self.shape, int):
            return (None,) * self.shape
        return tuple(self.shape)

    def describe(self) -> str:
        dims = self.dims()
        words = _KIND_WORDS[self.kind]
        if dims is None:
            return words
        if not dims:
            return f"a single value ({words})"
        text = ", ".join("any" if d is None else str(d) for d in dims)
        return f"shape ({text}{',' if len(dims) == 1 else ''}) of {words}"


Spec = Array | tuple[Dim, ...] | int | None


def _as_array(spec: Spec) -> Array:
    return spec if isinstance(spec, Array) else Array(spec)


def expected_text(required: Mapping[str, Spec]) -> str:
    """``"a (particles, 3) ..."``: the arrays of ``required`` and their shapes, for a message."""
    return "; ".join(f"{key}: {_as_array(spec).describe()}" for key, spec in required.items())


def missing_keys(path: str | os.PathLike, keys) -> list[str]:
    """The names among ``keys`` that the .npz file at ``path`` lacks (``InputError`` if it
    is not a readable .npz file)."""
    with _open(Path(path)) as data:
        present = set(data.files)
    return [key for key in keys if key not in present]


def load_arrays(
    path: str | os.PathLike,
    required: Mapping[str, Spec],
    optional: Mapping[str, Spec] | None = None,
    what: str = "",
) -> dict[str, np.ndarray]:
    """The arrays ``required`` (all must be present) and those of ``optional`` the file
    holds, each checked against its spec; ``what`` names the kind of file in messages
    (e.g. "a latents file written by 'cryomotion train'").

    Raises ``InputError`` (one line: the file, the array, what was expected) for a missing
    or unreadable file, a missing array, an object (pickled) array, a non-numeric array
    or a wrong shape.
    """
    path = Path(path)
    optional = dict(optional or {})
    specs = {key: _as_array(spec) for key, spec in {**optional, **required}.items()}
    suffix = f" ({what})" if what else ""
    if not path.is_file():
        raise InputError(f"{path}: no such file{suffix}")
    arrays: dict[str, np.ndarray] = {}
    with _open(path) as data:
        missing = [key for key in required if key not in data.files]
        if missing:
            expected = expected_text({key: required[key] for key in missing})
            raise InputError(
                f"{path}: missing array{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (expected {expected}){suffix}"
            )
        for key, spec in specs.items():
            if key not in data.files:
                continue
            try:
                array = data[key]
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise InputError(
                        f"{path}: array {key!r} is unreadable ({err}){suffix}"
                    ) from None
                # object arrays, refused with allow_pickle=False
                raise InputError(
                    f"{path}: array {key!r} holds Python objects (expected "
                    f"{spec.describe()}){suffix}"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as err:
                raise InputError(f"{path}: array {key!r} is unreadable ({err}){suffix}") from None
            arrays[key] = array
    sizes: dict[str, tuple[str, int]] = {}
    for key, array in arrays.items():
        _check(path, key, array, specs[key], sizes, suffix)
    return arrays


def _open(path: Path):
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a readable .npz file ({err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a single .npy array, not an .npz file of named arrays")
    return data


def _check(path, key, array, spec: Array, sizes, suffix) -> None:
    if array.dtype.kind not in _KINDS[spec.kind]:
        raise InputError(
            f"{path}: array {key!r} holds {array.dtype} (expected {spec.describe()}){suffix}"
        )
    dims = spec.dims()
    if dims is None:
        return
    shape_text = "(" + ", ".join(map(str, array.shape)) + ("," if array.ndim == 1 else "") + ")"
    if array.ndim != len(dims):
        raise InputError(
            f"{path}: array {key!r} has shape {shape_text} (expected {spec.describe()}){suffix}"
        )
    for dim, size in zip(dims, array.shape, strict=True):
        if isinstance(dim, int) and size != dim:
            raise InputError(
                f"{path}: array {key!r} has shape {shape_text} (expected {spec.describe()}){suffix}"
            )
        if isinstance(dim, str):
            if dim in sizes and sizes[dim][1] != size:
                other, other_size = sizes[dim]
                raise InputError(
                    f"{path}: array {key!r} has {size} {dim}, array {other!r} {other_size} "
                    f"(expected the same){suffix}"
                )
            sizes.setdefault(dim, (key, size))

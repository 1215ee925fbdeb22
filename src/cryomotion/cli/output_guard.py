"""Nothing a user gave is overwritten: the output check every verb makes before writing.

A verb refuses, unless ``--force`` is given,

- an output path that is one of its inputs (compared as resolved paths, and as the same
  file when both exist, so symbolic and hard links count too);
- an output inside an existing training run folder or simulated dataset folder that the
  verb does not own (``own``: e.g. the run that ``analyze`` writes its analysis into);
- for verbs that write fixed file names into a folder, a folder already holding them
  (``check_new_files``).

Every refusal is an ``InputError`` naming the flag, the path and the way out.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from cryomotion.errors import InputError

PathLike = str | os.PathLike

_MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".cif.gz", ".mmcif.gz")
_RUN_MARKS = ("latents.npz", "checkpoints", "modes.npz", "metrics.csv")


def add_force_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--force``: lift the output check for this call (``what`` says what it allows)."""
    parser.add_argument("--force", action="store_true", help=what)


def _resolved(path: PathLike) -> Path:
    return Path(path).expanduser().resolve()


def same_file(a: PathLike, b: PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (resolved paths, or the same inode)."""
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def folder_kind(folder: PathLike) -> str | None:
    """The kind of folder ``folder`` is ("training run", "simulated dataset") or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / "config.yaml").is_file():
        has_reference = any(
            path.name.lower().endswith(_MODEL_SUFFIXES) for path in folder.glob("reference.*")
        )
        if has_reference or any((folder / mark).exists() for mark in _RUN_MARKS):
            return "training run"
    if (folder / "simulation.yaml").is_file() or (
        (folder / "ground_truth.npz").is_file() and (folder / "particles.star").is_file()
    ):
        return "simulated dataset"
    return None


def check_not_input(
    output: PathLike, inputs: Iterable[PathLike | None], *, force: bool = False, flag: str = "-o"
) -> None:
    """Refuse (``InputError``) an ``output`` that is one of ``inputs`` (None entries skipped)."""
    if force:
        return
    for source in inputs:
        if source is not None and str(source) and same_file(output, source):
            raise InputError(
                f"{flag} {output}: is the input {source} (choose another output, or add "
                f"--force to overwrite it)"
            )


def check_output(
    output: PathLike,
    inputs: Iterable[PathLike | None] = (),
    *,
    force: bool = False,
    flag: str = "-o",
    folder: bool = False,
    own: PathLike | None = None,
) -> None:
    """Refuse ``output`` (``InputError``) if it is an input or lies in a run/dataset not ours.

    ``folder``: the output is a folder the verb writes into, so the folder itself counts
    as a place not to write into when it holds a run or dataset. ``own``: a run or
    dataset folder the verb may write below (not the folder itself); the folders above
    it are not checked.
    """
    if force:
        return
    check_not_input(output, inputs, flag=flag)
    target = _resolved(output)
    own_root = _resolved(own) if own is not None else None
    places = ([target] if folder else []) + list(target.parents)
    for place in places:
        if own_root is not None and place == own_root and place != target:
            break  # below our own folder; where that folder lies is not this verb's choice
        kind = folder_kind(place)
        if kind is None:
            continue
        where = "is" if place == target else "is inside"
        raise InputError(
            f"{flag} {output}: {where} the existing {kind} {place} (choose another output, or "
            f"add --force to write there anyway)"
        )


def check_new_files(
    paths: Iterable[PathLike], *, force: bool = False, flag: str = "-o", what: str = "output"
) -> None:
    """Refuse (``InputError``) to write any of ``paths`` that already exists."""
    if force:
        return
    existing = [Path(path) for path in paths if os.path.lexists(path)]
    if existing:
        names = ", ".join(path.name for path in existing)
        raise InputError(
            f"{flag} {existing[0].parent}: already holds {what} files ({names}); choose a new "
            f"folder, or add --force to replace them"
        )

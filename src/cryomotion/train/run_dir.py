"""The run folder: what a training run writes, and the rule that one folder holds one run.

RUN/config.yaml        every setting, the version, the time, the command line
RUN/reference.<ext>    a copy of the reference model file
RUN/modes.npz, ...     what the system prepared (e.g. the normal modes)
RUN/checkpoints/last.pt
RUN/metrics.csv        one row per epoch
RUN/train.log
RUN/latents.npz        per-particle latents, shifts, particle_index, is_test

A run that fails before its first checkpoint leaves nothing behind (``NewRunFolder``):
what it wrote is removed, and so is the folder if it created it, so the same command can
simply be run again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.structure.io import read_model
from cryomotion.structure.model import AtomicModel
from cryomotion.train.config import RunConfig, config_differences, load_config

_MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")


@dataclass(frozen=True)
class RunPaths:
    """The files of the run folder ``root``."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def latents(self) -> Path:
        return self.root / "latents.npz"

    @property
    def refined_poses(self) -> Path:
        """RELION star file of the particles with their refined poses (``--pose-mode refine``)."""
        return self.root / "refined_particles.star"

    @property
    def reference(self) -> Path:
        """The run's copy of the reference model (``InputError`` if it has none)."""
        for path in sorted(self.root.glob("reference.*")):
            if path.name.lower().removesuffix(".gz").endswith(_MODEL_SUFFIXES):
                return path
        raise InputError(f"{self.root}: no reference model (expected a training run folder)")


def _model_suffix(path: Path) -> str:
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return Path(name[:-3]).suffix + ".gz"
    return suffix if suffix in _MODEL_SUFFIXES else ".pdb"


def copy_reference(source: str | Path, paths: RunPaths) -> Path:
    """Copy the reference model file into the run (atomically) and return the copy."""
    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: no such model file (expected a PDB or mmCIF file)")
    target = paths.root / f"reference{_model_suffix(source)}"
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def read_run_reference(paths: RunPaths, original: str | os.PathLike | None = None) -> AtomicModel:
    """Read the run's copy of the reference model; an ``InputError`` names ``original``.

    ``original`` is the model file the user gave (``config.reference``): an error in the
    copy is an error in that file, and that is the name the user knows.
    """
    copy = paths.reference
    try:
        return read_model(copy)
    except InputError as err:
        if not original:
            raise
        message = str(err).replace(str(copy), f"{original} (copied into the run as {copy.name})")
        raise InputError(message) from None


@dataclass
class NewRunFolder:
    """The run folder as it was before a run started writing it, to undo a failed start.

    ``begin`` records which of the folder and its parents exist and what the folder holds;
    ``discard`` removes whatever appeared since, unless a checkpoint was written (then the
    run is resumable and stays). Nothing that existed before is ever removed.
    """

    paths: RunPaths
    missing: tuple[Path, ...]  # folders that did not exist, innermost first
    entries: frozenset[str]  # names in the folder before

    @classmethod
    def begin(cls, paths: RunPaths) -> NewRunFolder:
        root = paths.root.absolute()
        missing = []
        folder = root
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        entries = frozenset(os.listdir(root)) if root.is_dir() else frozenset()
        return cls(paths, tuple(missing), entries)

    def discard(self) -> bool:
        """Remove what the failed start wrote; True if the folder is back as it was."""
        if self.paths.checkpoint.exists():
            return False
        root = self.paths.root.absolute()
        if root.is_dir():
            for name in set(os.listdir(root)) - self.entries:
                path = root / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        for folder in self.missing:  # innermost first; only if now empty
            try:
                folder.rmdir()
            except OSError:
                return False
        return True


def check_run_folder(paths: RunPaths, config: RunConfig, resume: bool) -> bool:
    """Decide whether ``config`` may run in ``paths.root``; True if it continues a run there.

    A folder holding a run (``config.yaml``) is continued only with ``resume`` and only
    with the same settings (epochs, workers, device and checkpoint interval may change);
    anything else raises ``InputError``. So does a non-empty folder that holds no run.
    """
    root = paths.root
    if paths.config.is_file():
        if not resume:
            raise InputError(
                f"{root} already holds a training run (add --resume to continue it, or choose "
                "another output folder)"
            )
        previous = load_config(paths.config)
        differences = config_differences(previous, config)
        if differences:
            raise InputError(
                f"{root} holds a different run: settings {', '.join(differences)} differ from "
                f"{paths.config} (choose another output folder)"
            )
        return True
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder (expected an output folder)")
    if root.is_dir() and any(root.iterdir()):
        raise InputError(
            f"{root} is not empty and holds no training run (choose a new or empty folder)"
        )
    return False

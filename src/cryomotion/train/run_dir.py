"""The run folder: what a training run writes, and the rule that one folder holds one run.

RUN/config.yaml        every setting, the version, the time, the command line
RUN/reference.<ext>    a copy of the reference model file
RUN/modes.npz, ...     what the system prepared (e.g. the normal modes)
RUN/checkpoints/last.pt
RUN/metrics.csv        one row per epoch
RUN/train.log
RUN/latents.npz        per-particle latents, shifts, particle_index, is_test
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
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

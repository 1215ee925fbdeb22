"""The registry of systems: each is a recipe of deformation, inference, pose, objective and
schedule over the shared engine (docs/architecture.md).

A system is named on the command line (``cryomotion train nma ...``) and recorded in the
run's config; the trainer, ``export`` and ``analyze`` look it up here and never depend on
which one it is. Systems live in their own modules, imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryomotion.deform.base import Deformation
from cryomotion.errors import InputError
from cryomotion.models.inference import Inference
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.schedule import Phase
from cryomotion.structure.model import AtomicModel

# system name -> module defining ``SYSTEM``
SYSTEMS: dict[str, str] = {
    "nma": "cryomotion.systems.nma",
    "segments": "cryomotion.systems.segments",
    "atomvae": "cryomotion.systems.atomvae",
    "flex": "cryomotion.systems.flex",
    "deephemnma": "cryomotion.systems.deephemnma",
}


@dataclass(frozen=True)
class SystemFlag:
    """A command-line flag of one system: ``flag`` sets the config ``key``; ``minimum`` is
    the smallest integer allowed, or None for an on/off flag."""

    flag: str
    key: str
    help: str
    minimum: int | float | None = None
    value_type: type | None = None  # int (default when ``minimum`` is set), float or str

    @property
    def is_switch(self) -> bool:
        return self.minimum is None and self.value_type is None


@dataclass(frozen=True)
class InferenceInputs:
    """What a system's ``build_inference`` may use: the run's ``config`` (a ``RunConfig``),
    its folder ``run_dir``, the ``reference`` model, the built ``deformation``, the training
    box ``box`` (px) and ``pixel_size`` (Å/px), and the number of particles."""

    config: Any
    run_dir: Path
    reference: AtomicModel
    deformation: Deformation
    box: int
    pixel_size: float
    n_particles: int


@dataclass(frozen=True)
class AlignmentPlan:
    """Training on an elastically aligned subset (DeepHEMNMA): the particles ``aligned``
    (sorted indices) are aligned one by one before training (``Inference.align``); the
    trainer then fits on ``train`` and validates on ``validation`` (both within
    ``aligned``), stopping after ``patience`` epochs without a better validation loss."""

    aligned: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    patience: int | None = None
    batch_size: int = 64  # particles aligned at once


@dataclass(frozen=True)
class System:
    """One motion model.

    Attributes
    ----------
    name, summary : how the CLI names and describes it.
    settings_class : dataclass of the system's own settings (the ``deformation`` section
        of a run's config).
    legacy_latent_key : the key under which runs of cryomotion 0.1 stored the latents in
        ``latents.npz`` (read for old runs; new runs write ``latents``).
    prepare : ``(reference, latent_dim, settings, run_dir)``: compute what the deformation
        needs once (e.g. the normal modes) and save it in ``run_dir``; a no-op when it is
        there already.
    build_deformation : ``(reference, latent_dim, settings, run_dir)`` -> ``Deformation``,
        from the files ``prepare`` wrote (so a run folder alone rebuilds it).
    default_latent_dim : ``settings`` -> d when the run's config leaves it unset.
    variational : the amortized encoder is a VAE's: a Gaussian posterior per particle (mean
        and log variance heads), sampled in training, its mean at inference; its KL to
        N(0, I) is a prior term of the objective.
    objective : ``settings`` -> the ``ReconstructionObjective`` of its training phase
        (likelihood, samples, prior weights).
    schedule : ``(settings, epochs, objective)`` -> the list of ``Phase``; None: one phase
        of ``epochs`` epochs.
    flags : the ``SystemFlag`` s of the system's own settings on ``cryomotion train``.
    save_state : ``(deformation, run_dir)``: save what the system learned besides the
        latents (raw state, e.g. the segment membership) after training; None for nothing.
        Products made from it (models, plots) are written by ``analysis``.
    build_inference : ``InferenceInputs`` -> the ``Inference`` of its particles; None: the
        amortized image encoder (``models.inference.AmortizedEncoder``) every seed-000/001
        style system uses.
    pose_modes : the ``--pose-mode`` values the system supports.
    complete : ``config`` -> ``config`` with the system's settings that depend on the rest
        of the run's config filled in (e.g. AtomVAE's pose stage is empty when poses are
        given); None for none. Called once, before a run starts or is read back.
    alignment : ``(settings, n_particles, seed)`` -> ``AlignmentPlan``: align a subset of
        the particles before training and train on it (the inference must provide
        ``align`` and ``final_predictions``, as ``models.alignment.AlignmentRegressor``
        does); None for none.
    rotation_correction : ``settings`` -> radians per unit of a rotation-correction head on
        the amortized encoder (``models.inference.AmortizedEncoder``; 0: no head); None: no
        head.
    """

    name: str
    summary: str
    settings_class: type
    prepare: Callable[[AtomicModel, int, Any, Path], None]
    build_deformation: Callable[[AtomicModel, int, Any, Path], Deformation]
    default_latent_dim: Callable[[Any], int]
    objective: Callable[[Any], ReconstructionObjective]
    legacy_latent_key: str = "latents"
    variational: bool = False
    schedule: Callable[[Any, int, ReconstructionObjective], list[Phase]] | None = None
    flags: tuple[SystemFlag, ...] = ()
    save_state: Callable[[Deformation, Path], None] | None = None
    build_inference: Callable[[InferenceInputs], Inference] | None = None
    pose_modes: tuple[str, ...] = ("given", "refine")
    complete: Callable[[Any], Any] | None = None
    alignment: Callable[[Any, int, int], AlignmentPlan] | None = None
    rotation_correction: Callable[[Any], float] | None = None

    def phases(self, settings: Any, epochs: int) -> list[Phase]:
        """The training schedule for ``epochs`` epochs (one phase unless the system says)."""
        objective = self.objective(settings)
        if self.schedule is None:
            return [Phase("train", epochs, objective)]
        return self.schedule(settings, epochs, objective)


def get_system(name: str) -> System:
    """The registered system ``name``; ``InputError`` for an unknown one."""
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r} (expected one of {', '.join(SYSTEMS)})")
    return importlib.import_module(SYSTEMS[name]).SYSTEM


def all_systems() -> list[System]:
    """Every registered system (imports each module)."""
    return [get_system(name) for name in SYSTEMS]

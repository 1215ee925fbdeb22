"""The registry of motion-model systems: each picks a deformation and its encoder heads.

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

from cryomotion.deform.base import Deformation
from cryomotion.errors import InputError
from cryomotion.structure.model import AtomicModel

# system name -> module defining ``SYSTEM``
SYSTEMS: dict[str, str] = {
    "nma": "cryomotion.models.nma",
    "segments": "cryomotion.models.segments",
}


@dataclass(frozen=True)
class System:
    """One motion model.

    Attributes
    ----------
    name, summary : how the CLI names and describes it.
    settings_class : dataclass of the system's own settings (the ``deformation`` section
        of a run's config).
    latent_name : name of the per-particle latents in ``latents.npz`` (e.g. "amplitudes").
    prepare : ``(reference, latent_dim, settings, run_dir)``: compute what the deformation
        needs once (e.g. the normal modes) and save it in ``run_dir``; a no-op when it is
        there already.
    build_deformation : ``(reference, latent_dim, settings, run_dir)`` -> ``Deformation``,
        from the files ``prepare`` wrote (so a run folder alone rebuilds it).
    default_latent_dim : ``settings`` -> d when the run's config leaves it unset.
    variational : the encoder is a VAE's: a Gaussian posterior per particle (mean and log
        variance heads), sampled in training, its mean at inference, KL to N(0, I) weighted
        by ``settings.latent_kl_weight``.
    image_loss : "l2" or "correlation" (see ``train.losses``).
    finalize : ``(deformation, reference, settings, run_dir)``: write what the system
        learned besides the latents (e.g. a segmentation) into ``run_dir`` after training;
        None for nothing.
    """

    name: str
    summary: str
    settings_class: type
    latent_name: str
    prepare: Callable[[AtomicModel, int, Any, Path], None]
    build_deformation: Callable[[AtomicModel, int, Any, Path], Deformation]
    default_latent_dim: Callable[[Any], int]
    variational: bool = False
    image_loss: str = "l2"
    finalize: Callable[[Deformation, AtomicModel, Any, Path], None] | None = None


def get_system(name: str) -> System:
    """The registered system ``name``; ``InputError`` for an unknown one."""
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r} (expected one of {', '.join(SYSTEMS)})")
    return importlib.import_module(SYSTEMS[name]).SYSTEM

"""Seed 000, the NMA autoencoder: amplitudes of d normal modes of the reference model.

The run folder keeps ``modes.npz`` (the reference model's ANM modes, all atoms, computed
once by ``prepare``), so the deformation is rebuilt from the run alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.dynamics.anm import DEFAULT_KERNEL_WIDTH, compute_normal_modes
from cryomotion.dynamics.modes import NormalModes
from cryomotion.errors import InputError
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.structure.model import AtomicModel
from cryomotion.systems.registry import System, SystemFlag

log = logging.getLogger(__name__)

MODES_FILE = "modes.npz"
DEFAULT_MODES = 16  # seed 000's d


@dataclass
class NormalModeSettings:
    """Elastic network of the reference model (see ``dynamics.anm.compute_normal_modes``)."""

    nodes: str = "ca"  # "ca", "centroid" or "heavy"
    cutoff: float = 15.0  # Å, spring cutoff
    gamma: float = 1.0
    distance_exponent: float = 0.0
    kernel_width: float = DEFAULT_KERNEL_WIDTH  # Å, coarse-grained -> all-atom interpolation
    mass_weighted: bool = False
    # The modes hold no rigid motion, but in the frame of its pose a particle may be turned
    # as a whole against the reference (a hinge motion with the core held still): the
    # encoder predicts a rotation correction of the pose, `rotation_unit` degrees per unit
    # of its output (0: none, seed 000), and a thermal prior on the amplitudes (weight
    # `prior_weight`, ``NormalModeDeformation``; 0: none, seed 000) keeps the stiffer modes
    # from standing in for that turn (docs/results.md, section nma_hinge).
    rotation_unit: float = 20.0  # degrees
    prior_weight: float = 3e-4
    # Adam rate of the mode vectors (0: the ANM modes as computed, seed 000): the basis
    # starts at the ANM modes and learns the directions the data move along
    modes_lr: float = 0.0


def prepare(
    reference: AtomicModel, latent_dim: int, settings: NormalModeSettings, run_dir: Path
) -> None:
    """Compute the ``latent_dim`` lowest modes of ``reference`` into ``run_dir/modes.npz``."""
    path = Path(run_dir) / MODES_FILE
    if path.is_file():
        return
    log.info("computing %d normal modes of the reference model", latent_dim)
    reference_modes(reference, latent_dim, settings).save(path)


def reference_modes(
    reference: AtomicModel, latent_dim: int, settings: NormalModeSettings
) -> NormalModes:
    """The ``latent_dim`` lowest ANM modes of ``reference`` on ``settings``' network."""
    return compute_normal_modes(
        reference,
        n_modes=latent_dim,
        nodes=settings.nodes,
        cutoff=settings.cutoff,
        gamma=settings.gamma,
        distance_exponent=settings.distance_exponent,
        kernel_width=settings.kernel_width,
        mass_weighted=settings.mass_weighted,
    )


def build_deformation(
    reference: AtomicModel, latent_dim: int, settings: NormalModeSettings, run_dir: Path
) -> NormalModeDeformation:
    """The deformation along the first ``latent_dim`` modes of ``run_dir/modes.npz``."""
    path = Path(run_dir) / MODES_FILE
    modes = NormalModes.load(path)
    if modes.n_modes < latent_dim or modes.n_atoms != reference.n_atoms:
        raise InputError(
            f"{path}: {modes.n_modes} modes of {modes.n_atoms} atoms, expected "
            f"{latent_dim} modes of the reference model's {reference.n_atoms} atoms"
        )
    if min(settings.rotation_unit, settings.prior_weight, settings.modes_lr) < 0:
        raise InputError(
            f"deformation.rotation_unit {settings.rotation_unit}, deformation.prior_weight "
            f"{settings.prior_weight}, deformation.modes_lr {settings.modes_lr}: expected "
            "values >= 0"
        )
    return NormalModeDeformation(
        reference.coords,
        modes.vectors[:latent_dim],
        modes.eigenvalues[:latent_dim],
        settings.prior_weight,
        modes_lr=settings.modes_lr,
    )


SYSTEM = System(
    name="nma",
    summary="normal-mode autoencoder (seed 000): amplitudes of d ANM modes per particle",
    settings_class=NormalModeSettings,
    legacy_latent_key="amplitudes",
    prepare=prepare,
    build_deformation=build_deformation,
    default_latent_dim=lambda settings: DEFAULT_MODES,
    objective=lambda settings: ReconstructionObjective("l2"),  # seed 000's L2 loss
    flags=(SystemFlag("--modes", "model.latent_dim", "number of normal modes d (default 16)", 0),),
    rotation_correction=lambda settings: math.radians(settings.rotation_unit),
)

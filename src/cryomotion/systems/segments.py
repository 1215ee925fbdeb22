"""Seed 001, cryoSPHERE: learned segments of the residue chain moving as rigid bodies.

A VAE: the encoder gives a Gaussian posterior on a latent z per particle; the decoder
maps z to one rotation and translation per segment; a Gaussian mixture over the residue
index (shared by all particles, with its own Gaussian posterior) says how much each
residue belongs to each segment. Trained with the correlation loss and the KL terms; one
departure from the paper by default: no weight on the latents' KL, and q(z|x) starting at
σ 0.05, because the paper's β = 1e-4 holds the encoder on one average deformation at
−20 dB (docs/results.md, section segments_collapse).

Nothing is precomputed: the segmentation and the decoder are learned parameters, kept in
the run's checkpoint. After training the run folder receives the learned membership,
``membership.npz`` (residues × segments); ``analysis.segmentation`` makes the products
from it (``cryomotion train`` writes them into the run folder right away).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cryomotion.atomic_write import atomic_path
from cryomotion.deform.segments import SegmentDeformation
from cryomotion.errors import InputError
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.structure.model import AtomicModel
from cryomotion.systems.registry import System, SystemFlag

log = logging.getLogger(__name__)

MEMBERSHIP_FILE = "membership.npz"
LIKELIHOODS = ("correlation", "gaussian")


@dataclass
class SegmentSettings:
    """The segmentation, the decoder and the VAE's loss weights (seed 001)."""

    segments: int = 6  # N_segm, the number of segments (paper's Fig. 2: 6; 25 for 4Q0J)
    temperature: float = 20.0  # tau of the tempered mixture (paper: 20)
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # decoder MLP
    cross_chain: bool = False  # allow a segment to span two chains
    translation_scale: float = 1.0  # Å per unit of the decoder's translation output
    # Adam rate of the mixture's few shared parameters (None: the training rate)
    segmentation_lr: float | None = 1e-2
    # the image term: "correlation" (eq. 7, blind to the images' scale) or "gaussian" (−log
    # N(y; ŷ, 1) in the intensity scale's noise units, where β = 1 is the ELBO)
    likelihood: str = "correlation"
    # β on KL(q(z|image) || N(0, I)) per image, against a correlation loss in [0, 2]. 0: the
    # KL, whose gradient does not shrink with the SNR as the correlation's does, holds the
    # encoder on one average deformation at -20 dB (docs/results.md, segments_collapse:
    # 1,500 particles of the hinge path, 12 epochs, 4.09 -> 1.97 Å at -20 dB, 1.62 -> 1.32 Å
    # at -10 dB); the paper's 1e-4 (earlier measured on AdK at -10 dB: 1.16 Å, 1e-3 1.60 Å,
    # 1e-5 1.41 Å) is one flag away
    latent_kl_weight: float = 0.0
    segmentation_kl_weight: float = 1e-4  # on the mixture parameters' KL (~ 1 / particles)
    continuity_weight: float = 0.0  # consecutive Cα distances kept (0: off, as the paper)
    clash_weight: float = 0.0  # non-adjacent Cα pairs kept >= clash_distance (0: off)
    clash_distance: float = 4.0  # Å
    # std × √width of the decoder's last weights at the start (0: zero, a saddle with the
    # encoder's zero-started head that low-SNR training does not leave; issue 18)
    decoder_init: float = 0.0


def default_latent_dim(settings: SegmentSettings) -> int:
    """6 per segment: "a latent variable of dimension 6 N_segm is, in principle, a
    sufficiently flexible choice" (seed 001, section 6)."""
    return 6 * settings.segments


def prepare(
    reference: AtomicModel, latent_dim: int, settings: SegmentSettings, run_dir: Path
) -> None:
    """Check that the segmentation fits the model (nothing to precompute)."""
    build_deformation(reference, latent_dim, settings, run_dir)


def build_deformation(
    reference: AtomicModel, latent_dim: int, settings: SegmentSettings, run_dir: Path
) -> SegmentDeformation:
    """A fresh segment deformation of ``reference`` (learned values come from the checkpoint)."""
    return SegmentDeformation.from_model(
        reference,
        latent_dim,
        settings.segments,
        temperature=settings.temperature,
        hidden=tuple(settings.hidden),
        cross_chain=settings.cross_chain,
        segmentation_kl_weight=settings.segmentation_kl_weight,
        continuity_weight=settings.continuity_weight,
        clash_weight=settings.clash_weight,
        clash_distance=settings.clash_distance,
        translation_scale=settings.translation_scale,
        segmentation_lr=settings.segmentation_lr,
        decoder_init=settings.decoder_init,
    )


@torch.no_grad()
def save_state(deformation: SegmentDeformation, run_dir: Path) -> None:
    """Write the learned membership (residues × segments) to ``run_dir/membership.npz``."""
    membership = deformation.membership().detach().cpu().double().numpy()
    with atomic_path(Path(run_dir) / MEMBERSHIP_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, membership=membership)


def objective(settings: SegmentSettings) -> ReconstructionObjective:
    """The image term ``likelihood`` (eq. 7's correlation by default) and the VAE's KL
    weighted by ``latent_kl_weight``."""
    if settings.likelihood not in LIKELIHOODS:
        raise InputError(
            f"deformation.likelihood {settings.likelihood!r}: expected one of "
            + ", ".join(LIKELIHOODS)
        )
    return ReconstructionObjective(
        settings.likelihood, prior_weights={"latent_kl": settings.latent_kl_weight}
    )


SYSTEM = System(
    name="segments",
    summary="cryoSPHERE (seed 001): learned segments moving as rigid bodies, VAE",
    settings_class=SegmentSettings,
    prepare=prepare,
    build_deformation=build_deformation,
    default_latent_dim=default_latent_dim,
    objective=objective,
    variational=True,
    flags=(
        SystemFlag("--segments", "deformation.segments", "number of segments N (default 6)", 1),
        SystemFlag(
            "--cross-chain",
            "deformation.cross_chain",
            "let a segment span several chains (default: one chain per segment)",
        ),
    ),
    save_state=save_state,
)

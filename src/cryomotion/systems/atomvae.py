"""Seed 002, AtomVAE: residue frames moved by a decoder, poses inferred by the VAE itself.

- deformation: ``ResidueFrameDeformation`` (a ResNet from the 32-d conformation latent to
  one rigid frame update per residue; continuity and centering terms);
- inference: ``ConformationPoseEncoder`` (an MLP on the pixels; a Gaussian posterior on the
  conformation and, conditioned on each of its samples, one on the 8-d pose latent);
- pose: ``infer`` (the seed's: no poses from the file), ``refine`` (the pose latent is a
  correction around the file's pose) or ``given``;
- objective: the Gaussian likelihood (noise σ = 1 in the normalised units, i.e. the
  images' measured background noise), reduced over the conformation × pose samples of an
  image by log-mean-exp (eq. 4), β = 1 on the conformation KL, 0.01 on the pose KL, 0.1
  centering, continuity 1 (the seed's 0.01 breaks the chain at our likelihood's scale);
- schedule: stage 1 ("poses") trains the encoder's pose branch on the base structure alone
  with ``stage1_pose_samples`` pose samples, stage 2 ("all") trains everything. Optionally
  (``dream_epochs`` > 0, ``--dream-epochs``; not in the seed) a "dream" phase first trains
  the pose posterior on images dreamt from the base structure (``models.pose_sleep``).

The seed samples 64 conformations × 4 poses per image (128 poses in stage 1) in batches of
256; those cost 256 renders per image, so the defaults here are CPU-sized (8 × 2, 16) and
named in the run's config (``deformation`` section), where a GPU run raises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from cryomotion.deform.residue_frames import ResidueFrameDeformation
from cryomotion.errors import InputError
from cryomotion.models.conformation_pose_encoder import ConformationPoseEncoder
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.pose import PoseMode
from cryomotion.models.pose_sleep import PoseSleepObjective
from cryomotion.models.schedule import Phase
from cryomotion.structure.model import AtomicModel
from cryomotion.systems.registry import InferenceInputs, System, SystemFlag

DEFAULT_LATENT_DIM = 32  # the seed's conformation latent


@dataclass
class AtomVAESettings:
    """Decoder, encoder, samples, loss weights and stages of AtomVAE (seed 002 appendix)."""

    # the decoder (seed: ResNet of width 256, 5 blocks, representation 512)
    width: int = 256
    blocks: int = 5
    representation: int = 512
    translation_scale: float = 1.0  # Å per unit of the decoder's translation output
    rotation_scale: float = 1.0  # scale of the decoder's Gram–Schmidt vectors
    # render one Gaussian bead per residue (at its Cα), not every atom: the spelling of runs
    # before the shared ``model.coarse`` (``--coarse``, beads of 2 Å), still read
    coarse: bool = False
    bead_sigma: float = 2.0  # Å, the beads' standard deviation with ``coarse``
    # the encoder (seed: MLP 2048, 1024, 512, 512; pose MLP 32, 32, 32)
    trunk: list[int] = field(default_factory=lambda: [2048, 1024, 512, 512])
    pose_hidden: list[int] = field(default_factory=lambda: [32, 32, 32])
    shift_scale: float = 2.0  # Å per unit of the pose latent's in-plane translation
    refine_rotation_scale: float = 0.1  # --pose-mode refine: scale of the rotation correction
    # samples per image (seed: 64 conformations × 4 poses; 128 poses in stage 1)
    conformation_samples: int = 8
    pose_samples: int = 2
    stage1_pose_samples: int = 16
    # the objective's weights (seed: 1, 0.01, 0.01, 0.1). Continuity is 1, not the seed's
    # 0.01: against our per-pixel Gaussian likelihood on CPU-sized boxes 0.01 let the decoder
    # break the chain (consecutive Cα 5.4 ± 3.1 Å, EMD-RMSD 4.13 Å, worse than rigid); 1.0
    # holds it (4.16 ± 0.92 Å, EMD-RMSD 2.73 Å): docs/results.md, seed002
    latent_kl_weight: float = 1.0
    pose_kl_weight: float = 0.01
    continuity_weight: float = 1.0
    centering_weight: float = 0.1
    noise_sigma: float = 1.0  # per pixel, normalised units (the measured background noise)
    # stage 1's epochs (None: half of --epochs; 0 with --pose-mode given)
    pose_epochs: int | None = None
    # --pose-mode infer: epochs of a "dream" phase before stage 1 that trains the pose
    # posterior on images dreamt from the base structure (models/pose_sleep.py; not in the
    # seed, whose schedule 0 gives)
    dream_epochs: int = 0


def prepare(reference: AtomicModel, latent_dim: int, settings: AtomVAESettings, run_dir: Path):
    """Check that the model has residues to move (nothing to precompute)."""
    if reference.n_residues == 0:
        raise InputError(f"{reference.source or 'reference model'}: no residues to move")


def build_deformation(
    reference: AtomicModel, latent_dim: int, settings: AtomVAESettings, run_dir: Path
) -> ResidueFrameDeformation:
    """A fresh decoder (learned values come from the checkpoint)."""
    return ResidueFrameDeformation(
        reference,
        latent_dim,
        width=settings.width,
        blocks=settings.blocks,
        representation=settings.representation,
        translation_scale=settings.translation_scale,
        rotation_scale=settings.rotation_scale,
        continuity_weight=settings.continuity_weight,
        centering_weight=settings.centering_weight,
        coarse=settings.coarse,
        bead_sigma=settings.bead_sigma,
    )


def pose_epochs(settings: AtomVAESettings, epochs: int) -> int:
    """Stage 1's epochs out of ``epochs``."""
    first = epochs // 2 if settings.pose_epochs is None else settings.pose_epochs
    return max(0, min(first, epochs))


def complete(config):
    """With poses given the pose stage has nothing to learn: unless ``--pose-epochs`` says
    otherwise it is empty (and with poses to infer or refine, half of the epochs)."""
    settings: AtomVAESettings = config.deformation
    if settings.pose_epochs is None and PoseMode.parse(config.model.pose_mode) is PoseMode.GIVEN:
        return replace(config, deformation=replace(settings, pose_epochs=0))
    return config


def build_inference(inputs: InferenceInputs) -> ConformationPoseEncoder:
    """The conformation and pose posteriors for the run's pose mode."""
    config = inputs.config
    settings: AtomVAESettings = config.deformation
    mode = PoseMode.parse(config.model.pose_mode)
    stage1 = pose_epochs(settings, config.training.epochs) + settings.dream_epochs
    if mode is PoseMode.GIVEN and stage1 > 0:
        raise InputError(
            "--pose-mode given: AtomVAE's pose stage has nothing to learn; leave out "
            "--pose-epochs/--dream-epochs (or use --pose-mode infer, the seed's, or refine)"
        )
    return ConformationPoseEncoder(
        inputs.box,
        config.model.latent_dim,
        inputs.deformation.represent,
        representation=settings.representation,
        trunk=tuple(settings.trunk),
        pose_hidden=tuple(settings.pose_hidden),
        pose_mode=mode,
        shift_scale=settings.shift_scale,
        rotation_scale=settings.refine_rotation_scale,
    )


def objective(settings: AtomVAESettings) -> ReconstructionObjective:
    """Stage 2's objective: Gaussian likelihood, log-mean-exp over samples, weighted KLs."""
    for name in ("conformation_samples", "pose_samples", "stage1_pose_samples"):
        if getattr(settings, name) < 1:
            raise InputError(f"deformation.{name} {getattr(settings, name)}: expected >= 1")
    return ReconstructionObjective(
        "gaussian",
        samples=settings.conformation_samples,
        reduce="logmeanexp",
        prior_weights={"latent_kl": settings.latent_kl_weight, "pose_kl": settings.pose_kl_weight},
        pose_samples=settings.pose_samples,
        noise_sigma=settings.noise_sigma,
    )


def schedule(
    settings: AtomVAESettings, epochs: int, objective: ReconstructionObjective
) -> list[Phase]:
    """Stage 1 (pose branch on the base structure), then stage 2 (everything)."""
    dream = min(settings.dream_epochs, epochs)
    first = min(pose_epochs(settings, epochs), epochs - dream)
    stage1 = replace(objective, samples=1, pose_samples=settings.stage1_pose_samples)
    phases = []
    if dream:
        sleep = PoseSleepObjective(**{f.name: getattr(stage1, f.name) for f in fields(stage1)})
        phases.append(Phase("dream", dream, sleep, train=("inference",), use_conformation=False))
    if first:
        phases.append(
            Phase("poses", first, stage1, train=("inference", "intensity"), use_conformation=False)
        )
    if epochs - dream - first or not phases:
        phases.append(Phase("all", epochs - dream - first, objective))
    return phases


SYSTEM = System(
    name="atomvae",
    summary="AtomVAE (seed 002): per-residue rigid frames from a ResNet; conformation and "
    "pose posteriors, poses inferred",
    settings_class=AtomVAESettings,
    prepare=prepare,
    build_deformation=build_deformation,
    default_latent_dim=lambda settings: DEFAULT_LATENT_DIM,
    objective=objective,
    variational=True,
    schedule=schedule,
    complete=complete,
    flags=(
        SystemFlag(
            "--pose-epochs",
            "deformation.pose_epochs",
            "epochs of the pose stage on the base structure (default: half of --epochs; "
            "none with --pose-mode given)",
            0,
        ),
        SystemFlag(
            "--dream-epochs",
            "deformation.dream_epochs",
            "--pose-mode infer: epochs that first train the pose posterior on images dreamt "
            "from the base structure (default 0, the seed's schedule)",
            0,
        ),
        SystemFlag(
            "--conformation-samples",
            "deformation.conformation_samples",
            "conformation samples per image (default 8; the seed's 64)",
            1,
        ),
        SystemFlag(
            "--pose-samples",
            "deformation.pose_samples",
            "pose samples per conformation sample (default 2; the seed's 4)",
            1,
        ),
    ),
    build_inference=build_inference,
    pose_modes=("infer", "refine", "given"),
)

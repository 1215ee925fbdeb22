"""Train a motion model on particle images with known poses and CTFs.

SYSTEM picks the motion model:
  nma       the normal-mode autoencoder of seed 000: a CNN encoder maps each image to a
            shift correction and the amplitudes of the d lowest normal modes of MODEL; the
            decoder moves MODEL along the modes, rotates it by the particle's pose,
            projects it with its CTF and shift; an L2 loss trains the encoder.
  segments  cryoSPHERE (seed 001): a VAE whose decoder moves --segments learned segments
            of the residue chain (a Gaussian mixture over the residues, tau = 20) as rigid
            bodies; correlation loss + KL (+ optional continuity and clash losses). RUN
            also receives segmentation.pdb (B-factor = segment), segments.tsv (residue
            ranges) and segmentation.png (per-residue membership).

PARTICLES is a RELION .star, a cryoSPARC .cs, or a stack (.mrcs/.txt) with cryoDRGN
--poses and --ctf .pkl files (cryoDRGN stacks usually need --invert-data). MODEL is the
reference atomic model (PDB/mmCIF) in the frame of the consensus map (see
docs/conventions.md; --rotation-center centroid for a model centred on its centroid).

RUN must not lie inside another run or a simulated dataset folder (--force allows it),
and no input file may be RUN. A run that fails before its first checkpoint removes what
it wrote (a folder it created goes too), so the same command can be retried; after the
first checkpoint, --resume continues it. An unexpected error's traceback is appended to
RUN/train.log when RUN exists, else to ./cryomotion-error.log.

RUN receives config.yaml (every setting, the version, the command line), a copy of
MODEL, modes.npz (nma), checkpoints/last.pt (every epoch), metrics.csv, train.log and
latents.npz (per particle, the same keys for every system: latents (N, d) — for nma the
mode amplitudes in Å —, rotations (N, 3, 3) and shifts (N, 2) Å of the pose rendered
with, particle_index, is_test, and log_var for a VAE). With --pose-mode refine it also
receives refined_particles.star: the particles with their refined poses, for RELION.
A RUN holding another run is refused; --resume continues a stopped run from its last
checkpoint (give only -o RUN, or more --epochs to train on). Several GPUs or
nodes: launch the same command with torchrun (--batch-size is the global batch).

Defaults follow the seed (Adam 1e-3, batch 256, batch norm) except the encoder width:
0.25 trains 4,000 64-px particles x 20 epochs in minutes on 2 CPU cores (docs/
performance.md); the seed's full-width encoder is --width 1. Batch 256 suits 10^4-10^6
particles; a few thousand particles learn far better with --batch-size 32 --lr 3e-4 (the
settings of `cryomotion demo`). --box 32 or 64 speeds training on large boxes.

Every setting of config.yaml can be given as --set SECTION.KEY=VALUE (repeatable, e.g.
--set deformation.cutoff=12 --set model.hidden=256,128 --set data.box=none): the value is
read as the setting's type, and an unknown setting or a bad value is an error. Precedence:
defaults < --config (or the run's config with --resume) < --set < the specific flags.

examples:
  cryomotion train nma particles.star reference.pdb -o run --modes 16 --epochs 20
  cryomotion train nma particles.mrcs ref.pdb --poses poses.pkl --ctf ctf.pkl \\
      --invert-data -o run --box 64
  cryomotion train nma -o run --resume
  cryomotion train segments particles.star reference.pdb -o run_seg --segments 8
  cryomotion train nma particles.star ref.pdb -o run --set deformation.cutoff=12
  torchrun --nproc_per_node 4 -m cryomotion.cli.main train nma particles.star ref.pdb -o run
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from cryomotion.analysis.segmentation import write_segmentation_products
from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.particle_arguments import add_particle_arguments
from cryomotion.errors import InputError
from cryomotion.npz_arrays import load_arrays
from cryomotion.systems.registry import SYSTEMS, SystemFlag, all_systems, get_system
from cryomotion.systems.segments import MEMBERSHIP_FILE
from cryomotion.train.config import RunConfig, load_config, with_overrides, with_settings
from cryomotion.train.run import train_run
from cryomotion.train.run_dir import RunPaths, read_run_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "system", choices=sorted(SYSTEMS), help="motion model (nma: seed 000, segments: seed 001)"
    )
    parser.add_argument(
        "particles", nargs="?", metavar="PARTICLES", help="particles: .star, .cs, or a stack"
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="reference model (PDB/mmCIF)")
    parser.add_argument("-o", "--output", required=True, metavar="RUN", help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN")
    add_force_argument(parser, "start RUN even inside another run or a dataset folder")
    parser.add_argument("--config", metavar="YAML", help="settings file (flags override it)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        metavar="SECTION.KEY=VALUE",
        help="any setting of config.yaml, e.g. --set training.lr=3e-4 --set data.box=none "
        "(repeatable; typed and checked; overrides --config, the flags below override it)",
    )
    data = parser.add_argument_group("data")
    add_particle_arguments(data)
    data.add_argument(
        "--invert-data",
        action="store_true",
        default=None,
        help="multiply the images by -1 (dark particles, e.g. cryoDRGN-style stacks)",
    )
    data.add_argument("--box", type=integer(8), help="training box (px): Fourier-crop on the fly")
    data.add_argument(
        "--rotation-center",
        help="box (default: model in the consensus map frame), centroid, or x,y,z in Å",
    )
    data.add_argument(
        "--no-file-shifts",
        action="store_true",
        default=None,
        help="ignore the file's shifts: the encoder predicts the whole shift (as in seed 000)",
    )
    data.add_argument(
        "--test-fraction", type=real(minimum=0, below=1), help="held-out fraction (default 0.1)"
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--latent-dim",
        type=integer(0),
        help="latent dimension d (nma: = --modes; segments: default 6 x --segments)",
    )
    for flag, owners in _system_flags().items():
        spec = owners[0][1]
        names = ", ".join(name for name, _ in owners)
        if spec.is_switch:
            model.add_argument(
                flag, action="store_true", default=None, help=f"{names}: {spec.help}"
            )
        elif spec.value_type is str:
            model.add_argument(flag, help=f"{names}: {spec.help}")
        elif spec.value_type is float:
            model.add_argument(flag, type=real(minimum=spec.minimum), help=f"{names}: {spec.help}")
        else:
            model.add_argument(flag, type=integer(spec.minimum), help=f"{names}: {spec.help}")
    model.add_argument(
        "--pose-mode",
        choices=("given", "refine", "infer"),
        help="given (default): the particle file's poses (and a predicted shift correction); "
        "infer: no poses from the file (systems that support it); refine: also a "
        "per-particle rotation and shift correction, optimised with the model "
        "and written to RUN/refined_particles.star (rotations improve only as far as each "
        "particle's conformation is modelled well: docs/results.md, pose_refine)",
    )
    model.add_argument(
        "--width", type=real(above=0), help="encoder filters multiplier (default 0.25)"
    )
    model.add_argument(
        "--polish-steps",
        type=integer(0),
        help="per-particle polish when the latents are written: N gradient steps on each "
        "image's loss over its latents and pose correction, from the encoder's estimate "
        "(default 0: off; with --resume a finished run re-writes its latents)",
    )
    model.add_argument(
        "--norm",
        choices=("batch", "group"),
        help="encoder normalisation: batch (default, the seed's; SyncBatchNorm under torchrun "
        "on CUDA) or group (per image: a batch split across processes trains exactly as one)",
    )
    model.add_argument(
        "--intensity-scale",
        choices=("fitted", "per_image", "none"),
        help="data units -> renderer units: fitted (default: a gain per optics group, fitted "
        "at the start and learned), per_image (also a least-squares scale per image, for "
        "varying ice), none (images taken to be in the renderer's units)",
    )
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=integer(0), help="epochs (default 20)")
    training.add_argument("--batch-size", type=integer(1), help="global batch size (default 256)")
    training.add_argument("--lr", type=real(above=0), help="Adam learning rate (default 1e-3)")
    training.add_argument("--seed", type=integer(0), help="random seed (default 0)")
    training.add_argument("--device", help="auto (default: CUDA if present), cpu, cuda:N")
    training.add_argument(
        "--workers",
        type=integer(-1),
        help="data-loading processes (default -1: 0 on CPU, 4 on CUDA)",
    )
    training.add_argument(
        "--no-mixed-precision",
        action="store_true",
        default=None,
        help="keep the encoder in float32 on CUDA",
    )
    training.add_argument(
        "--checkpoint-every",
        type=integer(0),
        help="also checkpoint every N steps (default 0: at the end of each epoch only)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _system_flags() -> dict[str, list[tuple[str, SystemFlag]]]:
    """Each system flag -> the (system, flag spec) pairs that define it."""
    flags: dict[str, list[tuple[str, SystemFlag]]] = {}
    for system in all_systems():
        for spec in system.flags:
            flags.setdefault(spec.flag, []).append((system.name, spec))
    return flags


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _latent_dim_flag(system: str) -> str:
    for spec in get_system(system).flags:
        if spec.key == "model.latent_dim":
            return spec.flag
    return "--latent-dim"


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults, then --config (or, with --resume, the run's own config), then --set, then
    the specific flags: defaults < --config < --set < flags."""
    saved = RunPaths(Path(args.output)).config
    if args.resume and saved.is_file():
        config = load_config(saved)
    elif args.resume and not (args.particles and args.model):
        what = (
            "holds no training run (no config.yaml)"
            if Path(args.output).exists()
            else ("does not exist")
        )
        raise InputError(
            f"-o {args.output}: {what}, so there is nothing to --resume (start a run there "
            "with PARTICLES and MODEL, without --resume)"
        )
    elif args.config:
        config = load_config(args.config)
    else:
        config = RunConfig(system=args.system)
    if config.system != args.system:
        raise InputError(f"system {args.system!r} differs from the config's {config.system!r}")
    config = with_settings(config, args.settings)
    if not args.resume and not (args.particles and args.model) and not config.data.particles:
        raise InputError("expected PARTICLES and MODEL (or --resume with an existing RUN)")
    if (args.particles or args.model) and not (args.particles and args.model):
        raise InputError("expected both PARTICLES and MODEL")
    system_settings: dict[str, object] = {}
    for flag, owners in _system_flags().items():
        value = getattr(args, _dest(flag))
        if value is None:
            continue
        mine = [spec for name, spec in owners if name == args.system]
        if not mine:
            names = ", ".join(name for name, _ in owners)
            raise InputError(f"{flag} is for the {names} system, not {args.system}")
        system_settings[mine[0].key] = value
    flag_latent_dim = system_settings.pop("model.latent_dim", None)
    if flag_latent_dim is not None and args.latent_dim not in (None, flag_latent_dim):
        raise InputError(
            f"{_latent_dim_flag(args.system)} {flag_latent_dim} and --latent-dim "
            f"{args.latent_dim} disagree"
        )
    overrides = {
        "reference": args.model,
        "data.particles": args.particles,
        "data.poses": args.poses,
        "data.ctf": args.ctf,
        "data.pixel_size": args.pixel_size,
        "data.amplitude_contrast": args.amplitude_contrast,
        "data.voltage": args.voltage,
        "data.spherical_aberration": args.spherical_aberration,
        "data.dataset_dir": args.dataset_dir,
        "data.invert_data": args.invert_data,
        "data.box": args.box,
        "data.rotation_center": args.rotation_center,
        "data.use_file_shifts": None if args.no_file_shifts is None else False,
        "data.test_fraction": args.test_fraction,
        "model.latent_dim": flag_latent_dim if flag_latent_dim is not None else args.latent_dim,
        **system_settings,
        "model.pose_mode": args.pose_mode,
        "model.width": args.width,
        "model.polish_steps": args.polish_steps,
        "model.norm": args.norm,
        "model.intensity_scale": args.intensity_scale,
        "training.epochs": args.epochs,
        "training.batch_size": args.batch_size,
        "training.lr": args.lr,
        "training.seed": args.seed,
        "training.device": args.device,
        "training.workers": args.workers,
        "training.mixed_precision": None if args.no_mixed_precision is None else False,
        "training.checkpoint_every": args.checkpoint_every,
    }
    for key in ("reference", "data.particles", "data.poses", "data.ctf", "data.dataset_dir"):
        if overrides[key]:
            overrides[key] = str(Path(overrides[key]).expanduser().resolve())
    return with_overrides(config, overrides)


def error_log(args: argparse.Namespace) -> Path | None:
    """Where main's guard appends an unexpected error's traceback: RUN/train.log if RUN exists."""
    paths = RunPaths(Path(args.output))
    return paths.log if paths.root.is_dir() else None


def check_outputs(args: argparse.Namespace, config: RunConfig) -> None:
    """RUN is no input file and (for a new run) lies in no other run or dataset folder."""
    data = config.data
    inputs = [args.config, config.reference, data.particles, data.poses, data.ctf]
    if args.resume and RunPaths(Path(args.output)).config.is_file():
        return  # the run exists: where it lies was settled when it started
    check_output(args.output, inputs, force=args.force)


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    check_outputs(args, config)
    command_line = shlex.join(["cryomotion", *sys.argv[1:]])
    paths = train_run(
        config,
        args.output,
        resume=args.resume,
        command_line=command_line,
        progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # one report under torchrun
        membership = paths.root / MEMBERSHIP_FILE
        if membership.is_file():  # a learned segmentation: its products beside it
            arrays = load_arrays(membership, {"membership": ("residues", "segments")})
            reference = read_run_reference(paths, config.reference)
            write_segmentation_products(reference, arrays["membership"], paths.root)
        print(f"run folder: {paths.root}")
        print(f"latents:    {paths.latents}")
        if paths.refined_poses.is_file():
            print(f"poses:      {paths.refined_poses}")
    return 0

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
MODEL, modes.npz, checkpoints/last.pt (every epoch), metrics.csv, train.log and
latents.npz (per particle: amplitudes (N, d) Å, shifts (N, 2) Å, particle_index,
is_test). A RUN holding another run is refused; --resume continues a stopped run from
its last checkpoint (give only -o RUN, or more --epochs to train on). Several GPUs or
nodes: launch the same command with torchrun (--batch-size is the global batch).

Defaults follow the seed (Adam 1e-3, batch 256, batch norm) except the encoder width:
0.25 trains 4,000 64-px particles x 20 epochs in minutes on 2 CPU cores (docs/
performance.md); the seed's full-width encoder is --width 1. Batch 256 suits 10^4-10^6
particles; a few thousand particles learn far better with --batch-size 32 --lr 3e-4 (the
settings of `cryomotion demo`). --box 32 or 64 speeds training on large boxes.

examples:
  cryomotion train nma particles.star reference.pdb -o run --modes 16 --epochs 20
  cryomotion train nma particles.mrcs ref.pdb --poses poses.pkl --ctf ctf.pkl \\
      --invert-data -o run --box 64
  cryomotion train nma -o run --resume
  cryomotion train segments particles.star reference.pdb -o run_seg --segments 8
  torchrun --nproc_per_node 4 -m cryomotion.cli.main train nma particles.star ref.pdb -o run
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.errors import InputError
from cryomotion.models.registry import SYSTEMS
from cryomotion.train.config import RunConfig, load_config, with_overrides
from cryomotion.train.run import train_run
from cryomotion.train.run_dir import RunPaths


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
    data = parser.add_argument_group("data")
    data.add_argument("--poses", help="cryoDRGN poses.pkl (with a stack as PARTICLES)")
    data.add_argument("--ctf", help="cryoDRGN ctf.pkl (with a stack as PARTICLES)")
    data.add_argument(
        "--pixel-size", type=real(above=0), help="pixel size (Å) if the file has none"
    )
    data.add_argument(
        "--amplitude-contrast",
        type=real(minimum=0, maximum=1),
        help="amplitude contrast (fraction); default the file's, else 0 as RELION",
    )
    data.add_argument(
        "--voltage", type=real(above=0), help="voltage (kV) if the file has none"
    )
    data.add_argument(
        "--spherical-aberration", type=real(), help="Cs (mm) if the file has none"
    )
    data.add_argument("--dataset-dir", help="folder the image paths are relative to")
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
        "--modes", type=integer(0), help="nma: number of normal modes d (default 16)"
    )
    model.add_argument(
        "--latent-dim",
        type=integer(0),
        help="latent dimension d (nma: = --modes; segments: default 6 x --segments)",
    )
    model.add_argument(
        "--segments", type=integer(1), help="segments: number of segments N (default 6)"
    )
    model.add_argument(
        "--cross-chain",
        action="store_true",
        default=None,
        help="segments: let a segment span several chains (default: one chain per segment)",
    )
    model.add_argument(
        "--width", type=real(above=0), help="encoder filters multiplier (default 0.25)"
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


def build_config(args: argparse.Namespace) -> RunConfig:
    """Defaults, then --config (or, with --resume, the run's own config), then the flags."""
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
    if not args.resume and not (args.particles and args.model) and not config.data.particles:
        raise InputError("expected PARTICLES and MODEL (or --resume with an existing RUN)")
    if (args.particles or args.model) and not (args.particles and args.model):
        raise InputError("expected both PARTICLES and MODEL")
    if args.modes is not None and args.system != "nma":
        raise InputError(f"--modes is for the nma system (use --latent-dim for {args.system})")
    for flag, value in (("--segments", args.segments), ("--cross-chain", args.cross_chain)):
        if value is not None and args.system != "segments":
            raise InputError(f"{flag} is for the segments system, not {args.system}")
    if args.modes is not None and args.latent_dim is not None and args.modes != args.latent_dim:
        raise InputError(f"--modes {args.modes} and --latent-dim {args.latent_dim} disagree")
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
        "model.latent_dim": args.modes if args.modes is not None else args.latent_dim,
        "deformation.segments": args.segments,
        "deformation.cross_chain": args.cross_chain,
        "model.width": args.width,
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
        print(f"run folder: {paths.root}")
        print(f"latents:    {paths.latents}")
    return 0

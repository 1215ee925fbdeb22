"""A tour: simulate adenylate kinase opening and closing, learn its motion, check it.

Simulates 5,000 particles of the bundled AdK structures along a 50-frame open -> closed
morph (a 'continuous' distribution: three overlapping populations; uniform poses, CTF,
shifts, SNR -10 dB, 64 px at 1.5 Å/px), trains the NMA autoencoder of seed 000 (16
normal modes of open AdK) on 32-px Fourier crops for 6 epochs, exports the first
particles' atomic models, and prints each particle's Cα-RMSD to its true conformation
next to the rigid baseline (the open reference model itself), for all particles and for
the 10 % held-out test set; then analyses the run as ``cryomotion analyze`` does
(latent landscape, PC trajectories, states, maps, report.html). Deterministic for a
seed; a few minutes on 2 free CPU cores (more on a busy machine).

Writes DIR/data (particles.star/.mrcs, ground_truth.npz, reference.pdb), DIR/run (the
training run: config, checkpoints, metrics, latents), DIR/run/analysis (report.html and
the files it links) and DIR/models.cif; DIR must be new or empty, and not inside a
training run or simulated dataset folder (unless --force).

example:
  cryomotion demo -o cryomotion_demo
"""

from __future__ import annotations

import argparse

from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.workflows.demo import DemoSettings, run_demo, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoSettings()
    parser.add_argument(
        "-o",
        "--output",
        default="cryomotion_demo",
        metavar="DIR",
        help="output folder (default cryomotion_demo/)",
    )
    add_force_argument(parser, "write DIR even inside a training run or dataset folder")
    parser.add_argument(
        "--particles",
        type=integer(20),
        default=defaults.particles,
        help=f"simulated particles (default {defaults.particles})",
    )
    parser.add_argument(
        "--epochs",
        type=integer(1),
        default=defaults.epochs,
        help=f"training epochs (default {defaults.epochs})",
    )
    parser.add_argument(
        "--snr-db",
        type=real(),
        default=defaults.snr_db,
        help=f"signal-to-noise ratio in dB (default {defaults.snr_db:g})",
    )
    parser.add_argument("--seed", type=integer(0), default=defaults.seed, help="random seed")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument(
        "--workers",
        type=integer(-1),
        default=defaults.workers,
        help="data-loading processes (default: 0 on CPU, 4 on CUDA)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    check_output(args.output, force=args.force, folder=True)
    settings = DemoSettings(
        particles=args.particles,
        epochs=args.epochs,
        snr_db=args.snr_db,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
    )
    result = run_demo(args.output, settings, progress=not args.no_progress)
    print(summary(result))
    return 0

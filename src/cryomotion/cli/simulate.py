"""Simulate a particle dataset with ground truth from a reference model and its conformations.

Conformations come from a multi-model PDB/mmCIF trajectory, or from two end-point
structures morphed linearly (after superposing the second onto the first) into N frames,
as in the seed 000 set-up. Each particle gets a frame drawn from a distribution over
frames, a uniform random pose, a random shift, a log-normal defocus and white noise.

Writes DIR/particles.mrcs, DIR/particles.star (RELION 3.1), DIR/ground_truth.npz
(frame per particle, rotations, shifts, CTF, frame coordinates), DIR/reference.pdb (the
reference model placed in the box, as if docked into the consensus map) and
DIR/simulation.yaml.

example:
  cryomotion simulate --endpoints adk_open.pdb adk_closed.pdb --frames 50 \\
      --distribution continuous --particles 5000 --box 64 --pixel-size 1.5 \\
      --snr -20dB --seed 0 -o adk_sim
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys

import numpy as np

from cryomotion.errors import InputError
from cryomotion.simulate.conformations import DISTRIBUTIONS, morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.structure.io import check_same_atoms, read_model, read_trajectory
from cryomotion.structure.superpose import superpose


def parse_snr(text: str) -> float:
    """A linear SNR ("0.01"), a value in decibels ("-20dB") or "inf" for clean images."""
    value = text.strip().lower()
    try:
        if value in ("inf", "infinity", "none"):
            return math.inf
        if value.endswith("db"):
            return 10.0 ** (float(value[:-2]) / 10.0)
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--snr {text!r}: expected a number, a value in dB such as -20dB, or inf"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Let "--snr -20dB" read as a value, not as an unknown option (argparse treats only
    # plain negative numbers that way).
    parser._negative_number_matcher = re.compile(r"^-\d*\.?\d+(e-?\d+)?(db)?$", re.IGNORECASE)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trajectory", metavar="FILE", help="multi-model PDB/mmCIF of frames")
    source.add_argument("--endpoints", nargs=2, metavar=("A", "B"), help="two structures to morph")
    parser.add_argument("--frames", type=int, default=50, help="frames of the morph (default 50)")
    parser.add_argument(
        "--reference",
        metavar="MODEL",
        help="reference model (default: the first frame, i.e. A or the trajectory's model 1)",
    )
    parser.add_argument(
        "--no-align", action="store_true", help="do not superpose B onto A before morphing"
    )
    parser.add_argument(
        "--distribution",
        default="uniform",
        help=f"{', '.join(DISTRIBUTIONS)}, or a text file with one weight per frame",
    )
    parser.add_argument("--particles", type=int, default=1000, help="number of particles")
    parser.add_argument("--box", type=int, default=64, help="box size (px)")
    parser.add_argument("--pixel-size", type=float, default=1.5, help="pixel size (Å/px)")
    parser.add_argument(
        "--snr", type=parse_snr, default=0.01, help="SNR: a number, -20dB, or inf (default 0.01)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--defocus-mean", type=float, default=10000.0, help="mean defocus (Å)")
    parser.add_argument("--defocus-std", type=float, default=3000.0, help="defocus sd (Å)")
    parser.add_argument("--astigmatism", type=float, default=0.0, help="defocus_u - defocus_v (Å)")
    parser.add_argument("--voltage", type=float, default=300.0, help="voltage (kV)")
    parser.add_argument("--cs", type=float, default=2.7, help="spherical aberration (mm)")
    parser.add_argument("--amplitude-contrast", type=float, default=0.1)
    parser.add_argument("--shift-std", type=float, default=2.0, help="shift sd per axis (Å)")
    parser.add_argument("--hydrogens", action="store_true", help="keep hydrogen atoms")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")


def load_conformations(args: argparse.Namespace):
    """(reference model, frames (F, atoms, 3)) from --trajectory or --endpoints."""
    keep_h = args.hydrogens
    if args.trajectory:
        first = read_model(args.trajectory, keep_hydrogens=keep_h)
        frames = read_trajectory(args.trajectory, first, keep_hydrogens=keep_h)
    else:
        first = read_model(args.endpoints[0], keep_hydrogens=keep_h)
        second = read_model(args.endpoints[1], keep_hydrogens=keep_h)
        check_same_atoms(first, second, args.endpoints[1])
        end = second.coords if args.no_align else superpose(second.coords, first.coords)
        frames = morph(first.coords, end, args.frames)
    reference = first
    if args.reference:
        reference = read_model(args.reference, keep_hydrogens=keep_h)
        check_same_atoms(first, reference, args.reference)
    return reference, frames


def run(args: argparse.Namespace) -> int:
    reference, frames = load_conformations(args)
    weights = None
    distribution = args.distribution
    if distribution not in DISTRIBUTIONS:
        try:
            weights = np.loadtxt(distribution, ndmin=1)
        except (OSError, ValueError) as err:
            raise InputError(
                f"--distribution {distribution}: not one of {', '.join(DISTRIBUTIONS)} and not "
                f"a readable weights file ({err})"
            ) from None
        distribution = "weights"
    config = SimulationConfig(
        n_particles=args.particles,
        box=args.box,
        pixel_size=args.pixel_size,
        snr=args.snr,
        distribution=distribution,
        seed=args.seed,
        defocus_mean=args.defocus_mean,
        defocus_std=args.defocus_std,
        astigmatism=args.astigmatism,
        voltage=args.voltage,
        spherical_aberration=args.cs,
        amplitude_contrast=args.amplitude_contrast,
        shift_std=args.shift_std,
    )
    paths = simulate_dataset(
        reference,
        frames,
        config,
        args.output,
        weights=weights,
        command_line=shlex.join(["cryomotion", *sys.argv[1:]]),
        progress=not args.no_progress,
    )
    for name, path in paths.items():
        print(f"{name:>13}: {path}")
    return 0

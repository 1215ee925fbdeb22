"""Simulate a particle dataset with ground truth from a reference model and its conformations.

Conformations come from a multi-model PDB/mmCIF trajectory, or from two end-point
structures morphed linearly (after superposing the second onto the first) into N frames,
as in the seed 000 set-up. Each particle gets a frame drawn from a distribution over
frames, a uniform random pose, a random shift, a log-normal defocus and white noise.

Writes DIR/particles.mrcs (or, with --images-per-stack K, DIR/particles_000.mrcs, ...
of K images each; --stack-dtype float16 halves the disk space), DIR/particles.star
(RELION 3.1), DIR/ground_truth.npz (frame per particle, rotations, shifts, CTF, frame
coordinates), DIR/reference.pdb (the reference model placed in the box, as if docked
into the consensus map) and DIR/simulation.yaml. DIR must not hold a dataset already
(--force replaces it: its files are removed before the new ones are written) nor lie
inside a training run or another dataset; no output may be one of the input files.

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
from pathlib import Path

import numpy as np

from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import (
    add_force_argument,
    check_new_files,
    check_not_input,
    check_output,
)
from cryomotion.data.stack import STACK_DTYPES
from cryomotion.errors import InputError
from cryomotion.simulate.conformations import DISTRIBUTIONS, morph
from cryomotion.simulate.dataset import (
    DATASET_FILES,
    SimulationConfig,
    old_stacks,
    simulate_dataset,
)
from cryomotion.simulate.paths import domain_weights, hinge_path, parse_domains, sequential_timing
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
    parser.add_argument(
        "--frames", type=integer(2), default=50, help="frames of the morph (default 50)"
    )
    parser.add_argument(
        "--reference",
        metavar="MODEL",
        help="reference model (default: the first frame, i.e. A or the trajectory's model 1)",
    )
    parser.add_argument(
        "--no-align", action="store_true", help="do not superpose B onto A before morphing"
    )
    parser.add_argument(
        "--hinges",
        metavar="RANGES",
        help="with --endpoints: instead of a straight morph, the domains given as residue "
        "ranges (e.g. 122-159,30-59) turn about hinges from A to B, one after another in the "
        "order given, the rest held fixed (a non-linear path; simulate/paths.py)",
    )
    parser.add_argument(
        "--distribution",
        default="uniform",
        help=f"{', '.join(DISTRIBUTIONS)}, or a text file with one weight per frame",
    )
    parser.add_argument("--particles", type=integer(1), default=1000, help="number of particles")
    parser.add_argument("--box", type=integer(8), default=64, help="box size (px)")
    parser.add_argument("--pixel-size", type=real(above=0), default=1.5, help="pixel size (Å/px)")
    parser.add_argument(
        "--snr", type=parse_snr, default=0.01, help="SNR: a number, -20dB, or inf (default 0.01)"
    )
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed")
    parser.add_argument(
        "--defocus-mean", type=real(above=0), default=10000.0, help="mean defocus (Å)"
    )
    parser.add_argument(
        "--defocus-std", type=real(minimum=0), default=3000.0, help="defocus sd (Å)"
    )
    parser.add_argument("--astigmatism", type=real(), default=0.0, help="defocus_u - defocus_v (Å)")
    parser.add_argument("--voltage", type=real(above=0), default=300.0, help="voltage (kV)")
    parser.add_argument("--cs", type=real(minimum=0), default=2.7, help="spherical aberration (mm)")
    parser.add_argument("--amplitude-contrast", type=real(minimum=0, below=1), default=0.1)
    parser.add_argument(
        "--shift-std", type=real(minimum=0), default=2.0, help="shift sd per axis (Å)"
    )
    parser.add_argument(
        "--stack-dtype",
        choices=sorted(STACK_DTYPES),
        default="float32",
        help="pixel type of the stack: float32 (MRC mode 2) or float16 (mode 12, half the size)",
    )
    parser.add_argument(
        "--images-per-stack",
        type=integer(0),
        default=0,
        metavar="K",
        help="write several stacks of K images each (default 0: one stack, particles.mrcs)",
    )
    parser.add_argument("--hydrogens", action="store_true", help="keep hydrogen atoms")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    add_force_argument(
        parser,
        "replace a dataset already in DIR (its files are removed first), write into a run or "
        "dataset folder, or over an input file",
    )


def load_conformations(args: argparse.Namespace):
    """(reference model, frames (F, atoms, 3)) from --trajectory or --endpoints."""
    keep_h = args.hydrogens
    if args.hinges and not args.endpoints:
        raise InputError("--hinges needs --endpoints (the two states the domains turn between)")
    if args.trajectory:
        first = read_model(args.trajectory, keep_hydrogens=keep_h)
        frames = read_trajectory(args.trajectory, first, keep_hydrogens=keep_h)
    else:
        first = read_model(args.endpoints[0], keep_hydrogens=keep_h)
        second = read_model(args.endpoints[1], keep_hydrogens=keep_h)
        check_same_atoms(first, second, args.endpoints[1])
        end = second.coords if args.no_align else superpose(second.coords, first.coords)
        if args.hinges:
            domains = parse_domains(args.hinges)
            weights = domain_weights(first, domains)
            timing = sequential_timing(len(domains))
            frames = hinge_path(first.coords, end, weights, args.frames, timing)
        else:
            frames = morph(first.coords, end, args.frames)
    reference = first
    if args.reference:
        reference = read_model(args.reference, keep_hydrogens=keep_h)
        check_same_atoms(first, reference, args.reference)
    return reference, frames


def check_outputs(args: argparse.Namespace) -> None:
    """No output file is an input; DIR holds no dataset and lies in no run or dataset."""
    output = Path(args.output)
    inputs = [args.trajectory, *(args.endpoints or ()), args.reference]
    if args.distribution not in DISTRIBUTIONS:
        inputs.append(args.distribution)
    targets = [output / name for name in DATASET_FILES]
    targets += [path for path in old_stacks(output) if path not in targets]
    for target in targets:
        check_not_input(target, inputs, force=args.force)
    check_output(output, force=args.force, folder=True)
    check_new_files(targets, force=args.force, what="simulated dataset")


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
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
        stack_dtype=args.stack_dtype,
        images_per_stack=args.images_per_stack,
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

"""Render the projections of an atomic model with each particle's pose, shift and CTF.

The images have the particles' pixel and box size, so they can be compared with the data
image by image; this is also how pose, shift and CTF conventions are checked against
data from other software. PARTICLES is a RELION .star, a cryoSPARC .cs, or a stack
(.mrcs/.txt) with cryoDRGN --poses and --ctf .pkl files.

The model is taken to be in the frame of the consensus map the particles were refined
against (rotation centre at the box centre, (box//2)·pixel size on each axis); use
--rotation-center centroid for a model centred on its own centroid instead.

OUTPUT may not be one of the inputs (the model, the particle, pose and CTF files, the
particles' own stacks) nor lie inside a training run or simulated dataset folder, unless
--force is given.

example:
  cryomotion project reference.pdb particles.star -o projections.mrcs --indices 0-99
"""

from __future__ import annotations

import argparse

import numpy as np

from cryomotion.cli.flag_types import integer
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.particle_arguments import add_particle_arguments, read_particles_from
from cryomotion.data.selection import parse_indices
from cryomotion.simulate.project import project_particles
from cryomotion.structure.io import read_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="atomic model (PDB/mmCIF)")
    parser.add_argument("particles", help="particles: .star, .cs, or a stack with --poses/--ctf")
    parser.add_argument("-o", "--output", required=True, help="output stack (.mrcs)")
    add_force_argument(
        parser, "write OUTPUT even over an input file or inside a run or dataset folder"
    )
    add_particle_arguments(parser)
    parser.add_argument("--no-ctf", action="store_true", help="render without the CTF")
    parser.add_argument(
        "--indices",
        help="particles to render: a text/.npy file of 0-based indices, or ranges like 0-99,120",
    )
    parser.add_argument(
        "--rotation-center",
        default="box",
        help="box (default: model in the consensus map frame), centroid, or x,y,z in Å",
    )
    parser.add_argument("--hydrogens", action="store_true", help="keep hydrogen atoms")
    parser.add_argument("--batch-size", type=integer(1), default=128)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")


def run(args: argparse.Namespace) -> int:
    model = read_model(args.model, keep_hydrogens=args.hydrogens)
    table = read_particles_from(args)
    indices = parse_indices(args.indices, len(table))
    inputs = [args.model, args.particles, args.poses, args.ctf, args.indices]
    inputs += list(np.unique(table.image_files))
    check_output(args.output, inputs, force=args.force)
    path = project_particles(
        model,
        table,
        args.output,
        indices=indices,
        use_ctf=not args.no_ctf,
        rotation_center=args.rotation_center,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(f"wrote {len(indices)} projections to {path}")
    return 0

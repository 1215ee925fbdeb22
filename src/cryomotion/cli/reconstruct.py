"""Reconstruct a 3-D map from particles with their poses and CTFs (direct Fourier inversion).

Each image's spectrum, multiplied by its CTF, is inserted into a 3-D Fourier grid (padded
twice) by the central-slice theorem with a trilinear kernel; CTF² weights are accumulated
alongside, densities compensated (Pipe & Menon, as RELION), the kernel's sinc² divided out.
With --halves the particles are split into two half sets (the STAR file's rlnRandomSubset
when present, else a random split seeded by --seed), the maps are regularised with the
half sets' SSNR (Wiener, RELION-style) and the half-map FSC is written; without, a small
constant Wiener term (--regularization × the mean CTF² weight) is used.

Outputs: the map (-o, MRC with the particles' voxel size; origin so that a model in the
consensus-map frame overlays it, 0 for the default rotation centre), and with --halves
STEM_half1.mrc, STEM_half2.mrc, STEM_fsc.tsv and STEM_fsc.png (0.143 and 0.5 marked) beside
it, STEM being the map's name without .mrc (-o recon/map.mrc: recon/map_half1.mrc, ...).
None of them may be an input (the particle, pose, CTF, index and mask files, the
particles' stacks), nor lie inside a training run or simulated dataset folder, unless
--force is given.
PARTICLES is a RELION .star, a cryoSPARC .cs, or a stack (.mrcs/.txt) with cryoDRGN
--poses and --ctf .pkl files (cryoDRGN stacks of dark particles need --invert-data).

With --flexible, PARTICLES is a 3DFlex run folder (`cryomotion train flex`): its flow and
latents are frozen, the canonical density is re-fitted from zero for each half set at the
full box (or --box) by full-batch L-BFGS, and -o (a folder) receives flexible_half1/2.mrc,
the rigid reconstruction's rigid_half1/2.mrc of the same particles and split, mask.mrc and
fsc.tsv / fsc.png (global and masked, flexible and rigid).

examples:
  cryomotion reconstruct particles.star -o recon/map.mrc --halves --box 128
  cryomotion reconstruct run_flex --flexible -o run_flex/halves
"""

from __future__ import annotations

import argparse

import numpy as np

from cryomotion.analysis.reconstruction import (
    read_mask,
    reconstruct,
    reconstruction_paths,
    write_reconstruction,
)
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.particle_arguments import add_particle_arguments, read_particles_from
from cryomotion.data.selection import parse_indices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("particles", help="particles: .star, .cs, or a stack with --poses/--ctf")
    parser.add_argument("-o", "--output", required=True, help="output map (.mrc)")
    add_force_argument(
        parser, "write the outputs even over an input file or inside a run or dataset folder"
    )
    add_particle_arguments(parser)
    parser.add_argument(
        "--indices",
        help="particles to use: a text/.npy file of 0-based indices, or ranges like 0-99,120",
    )
    parser.add_argument("--box", type=int, help="Fourier-crop the images to this box (even)")
    parser.add_argument(
        "--halves",
        action="store_true",
        help="half maps and FSC (rlnRandomSubset if present, else a seeded random split)",
    )
    parser.add_argument("--mask", help="mask (.mrc, the output's box) for a masked FSC")
    parser.add_argument(
        "--invert-data", action="store_true", help="negate the images (dark particles)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random half split")
    parser.add_argument(
        "--regularization",
        type=float,
        default=1e-3,
        help="without --halves: Wiener constant as a fraction of the mean CTF² weight",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--flexible",
        action="store_true",
        help="PARTICLES is a 3DFlex training RUN: half maps of its canonical density under the "
        "frozen flow and latents (full-batch L-BFGS per half set, at --box or the full box), "
        "their FSC beside the rigid reconstruction's; -o is a folder",
    )
    parser.add_argument(
        "--lbfgs-iterations", type=int, default=30, help="--flexible: L-BFGS passes per half"
    )


def run_flexible(args: argparse.Namespace) -> int:
    """``reconstruct RUN --flexible``: 3DFlex's half-map validation."""
    from cryomotion.analysis.flexible_reconstruction import (
        flexible_half_maps,
        write_flexible_reconstruction,
    )

    check_output(args.output, [args.particles], force=args.force)
    result = flexible_half_maps(
        args.particles,
        box=args.box,
        iterations=args.lbfgs_iterations,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    paths = write_flexible_reconstruction(result, args.output)
    for name, resolution in result.resolutions(0.143).items():
        print(f"{name:>16} half-map FSC 0.143: {resolution:.2f} Å")
    print(f"training Nyquist {result.training_nyquist:.2f} Å; curves in {paths['fsc_tsv']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.flexible:
        return run_flexible(args)
    table = read_particles_from(args)
    indices = parse_indices(args.indices, len(table))
    inputs = [args.particles, args.poses, args.ctf, args.indices, args.mask]
    inputs += list(np.unique(table.image_files))
    for path in reconstruction_paths(args.output, args.halves).values():
        check_output(path, inputs, force=args.force)
    box = args.box or table.box_size
    mask = read_mask(args.mask, box) if args.mask else None
    result = reconstruct(
        table,
        indices=indices,
        box=box,
        halves=args.halves,
        mask=mask,
        invert_contrast=args.invert_data,
        seed=args.seed,
        regularization=args.regularization,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
    )
    paths = write_reconstruction(result, args.output)
    print(
        f"reconstructed {result.n_particles} particles at {box} px, "
        f"{result.voxel_size:.4g} Å/voxel: {paths['map']}"
    )
    if result.fsc is not None:
        masked = " (unmasked)" if result.fsc_masked is not None else ""
        print(
            f"half-map FSC{masked}: 0.143 at {result.resolution(0.143):.2f} Å, "
            f"0.5 at {result.resolution(0.5):.2f} Å; curves in {paths['fsc_tsv']}"
        )
        if result.fsc_masked is not None:
            print(
                f"half-map FSC (masked): 0.143 at {result.resolution(0.143, masked=True):.2f} Å,"
                f" 0.5 at {result.resolution(0.5, masked=True):.2f} Å"
            )
    return 0

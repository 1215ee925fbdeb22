"""Normal modes of an elastic network model (ANM), extended to all atoms.

Builds an anisotropic network on coarse-grained nodes of MODEL (Cα by default), computes
its lowest non-trivial modes, extends them to every atom of the model (heavy atoms, or all
atoms with --hydrogens) and writes them to an .npz file for 'cryomotion train'. Prints
each mode's eigenvalue and collectivity; with --compare, the overlap of each mode with the
displacement to another conformation of the same atoms and the cumulative overlap (how
much of that change the first modes can reach); with --animate, writes each mode as a
multi-model PDB file that PyMOL or ChimeraX plays as a movie.

Neither the modes file nor an animation may be one of the input models, nor lie inside
a training run or simulated dataset folder (a run's own modes.npz), unless --force.

example:
  cryomotion nma adk_open.pdb -n 16 -o modes.npz --compare adk_closed.pdb --animate movies/
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import add_force_argument, check_not_input, check_output
from cryomotion.dynamics.anm import DEFAULT_KERNEL_WIDTH, compute_normal_modes
from cryomotion.dynamics.modes import NormalModes
from cryomotion.dynamics.nodes import NODE_KINDS, select_nodes
from cryomotion.dynamics.overlap import (
    collectivity,
    conformational_change,
    cumulative_overlap,
    overlap,
)
from cryomotion.errors import InputError
from cryomotion.structure.io import check_same_atoms, fits_pdb, read_model, write_models
from cryomotion.structure.model import AtomicModel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="reference atomic model (PDB or mmCIF)")
    parser.add_argument(
        "-n",
        "--n-modes",
        type=integer(0),
        default=20,
        help="number of non-trivial modes (default 20)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("modes.npz"), help="modes file (.npz)"
    )
    add_force_argument(
        parser, "write the outputs even over an input model or inside a run or dataset folder"
    )
    parser.add_argument(
        "--nodes",
        choices=NODE_KINDS,
        default="ca",
        help="network nodes: Cα per residue, residue centroids, or all heavy atoms (default ca)",
    )
    parser.add_argument(
        "--cutoff", type=real(above=0), default=15.0, help="spring cutoff in Å (15)"
    )
    parser.add_argument("--gamma", type=real(above=0), default=1.0, help="spring constant γ (1)")
    parser.add_argument(
        "--distance-exponent",
        type=real(minimum=0),
        default=0.0,
        help="p in distance-dependent springs γ (3.8 Å / r)^p (default 0: uniform)",
    )
    parser.add_argument(
        "--kernel-width",
        type=real(minimum=0),
        default=DEFAULT_KERNEL_WIDTH,
        help=f"Å, width of the node-to-atom interpolation kernel ({DEFAULT_KERNEL_WIDTH:g}; "
        "0: each atom follows its residue's node)",
    )
    parser.add_argument(
        "--mass-weighted", action="store_true", help="mass-weighted Hessian and basis"
    )
    parser.add_argument(
        "--hydrogens", action="store_true", help="keep hydrogen atoms in the all-atom model"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER_MODEL",
        help="another conformation of the same atoms: print each mode's overlap with the change",
    )
    parser.add_argument(
        "--animate",
        type=Path,
        metavar="FOLDER",
        help="write mode_NN.pdb, one multi-model file per mode (an amplitude sweep)",
    )
    parser.add_argument(
        "--amplitude",
        type=real(above=0),
        default=2.0,
        help="Å, largest RMS displacement of the animated sweeps (default 2)",
    )
    parser.add_argument(
        "--frames", type=integer(2), default=20, help="models per animated sweep (default 20)"
    )


def _check_arguments(args: argparse.Namespace) -> None:
    if args.n_modes < 0:
        raise InputError(f"--n-modes {args.n_modes}: expected a non-negative integer")
    if args.frames < 2:
        raise InputError(f"--frames {args.frames}: expected at least 2")
    if not args.amplitude > 0:
        raise InputError(f"--amplitude {args.amplitude}: expected a positive RMS distance in Å")


def _check_outputs(args: argparse.Namespace, model: AtomicModel) -> None:
    inputs = (args.model, args.compare)
    check_output(args.output, inputs, force=args.force)
    if args.animate is not None:
        suffix = _animation_suffix(model)
        check_output(args.animate, force=args.force, flag="--animate", folder=True)
        for index in range(args.n_modes):
            path = args.animate / f"mode_{index + 1:02d}{suffix}"
            check_not_input(path, inputs, force=args.force, flag="--animate")


def _animation_suffix(model: AtomicModel) -> str:
    return ".pdb" if fits_pdb(model) else ".cif"  # PDB atom serials end at 99,999


def _animate(
    model: AtomicModel, modes: NormalModes, folder: Path, amplitude: float, frames: int
) -> list[Path]:
    """One multi-model file per mode, its sweep to ±amplitude Å RMS and back."""
    suffix = _animation_suffix(model)
    paths = []
    for index in range(modes.n_modes):
        path = folder / f"mode_{index + 1:02d}{suffix}"
        write_models(path, model, modes.sweep(index, amplitude, frames))
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    model = read_model(args.model, keep_hydrogens=args.hydrogens)
    other = None
    if args.compare is not None:
        other = read_model(args.compare, keep_hydrogens=args.hydrogens)
        check_same_atoms(model, other, str(args.compare))
    _check_outputs(args, model)
    modes = compute_normal_modes(
        model,
        n_modes=args.n_modes,
        nodes=args.nodes,
        cutoff=args.cutoff,
        gamma=args.gamma,
        distance_exponent=args.distance_exponent,
        kernel_width=args.kernel_width,
        mass_weighted=args.mass_weighted,
    )
    modes.save(args.output)

    print(
        f"{args.model}: {model.n_atoms} atoms, {modes.n_nodes} '{args.nodes}' nodes, "
        f"cutoff {args.cutoff:g} Å, γ {args.gamma:g}; "
        f"{len(modes.rigid_eigenvalues)} rigid-body modes set apart "
        f"(|λ| ≤ {np.abs(modes.rigid_eigenvalues).max(initial=0.0):.1e})"
    )
    node_collectivity = collectivity(modes.cg_vectors)
    header = f"{'mode':>4}  {'eigenvalue':>11}  {'collectivity':>12}"
    columns = []
    if other is not None:
        node_change = conformational_change(
            modes.node_coords, select_nodes(other, args.nodes).coords
        )
        atom_change = conformational_change(model.coords, other.coords)
        node_overlap = overlap(modes.cg_vectors, node_change)
        atom_overlap = overlap(modes.vectors, atom_change)
        columns = [
            node_overlap,
            cumulative_overlap(modes.cg_vectors, node_change),
            atom_overlap,
            cumulative_overlap(modes.vectors, atom_change),
        ]
        rmsd = math.sqrt(np.sum(atom_change**2) / model.n_atoms)
        print(f"change to {args.compare}: {rmsd:.2f} Å RMSD after superposition")
        header += (
            f"  {'overlap':>8}  {'cumulative':>10}  {'overlap':>8}  {'cumulative':>10}"
            f"\n{'':>31}  {'(nodes)':>8}  {'(nodes)':>10}  {'(atoms)':>8}  {'(atoms)':>10}"
        )
    print(header)
    for index in range(modes.n_modes):
        line = (
            f"{index + 1:>4}  {modes.eigenvalues[index]:>11.5g}  {node_collectivity[index]:>12.3f}"
        )
        if columns:
            line += "  {:>8.3f}  {:>10.3f}  {:>8.3f}  {:>10.3f}".format(
                *(column[index] for column in columns)
            )
        print(line)
    print(f"wrote {args.output}")
    if args.animate is not None:
        paths = _animate(model, modes, args.animate, args.amplitude, args.frames)
        if paths:
            print(f"wrote {len(paths)} animations to {args.animate}/ ({paths[0].name}, ...)")
    return 0

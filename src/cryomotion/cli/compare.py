"""Train several systems on the same particles and compare them on one page.

Each system (default: every registered one) is trained into DIR/SYSTEM with the same
split, seed and epochs (--epochs) or the same wall-clock budget (--budget MIN: the epochs
that fit, measured on each system's first epoch), then analysed (DIR/SYSTEM/analysis/
report.html). DIR/compare.html puts them side by side: held-out image misfit (every model
rendered with its pose and scored against held-out images in noise units, beside the rigid
reference model), the median Cα-RMSD between the models two systems give the same
particle and where on the landscape they disagree, each system's PC1 motion, the
landscapes on one scale, the cost (training time, particles/s, peak memory), with
--reconstruct each system's per-state model-vs-data FSC (its states reconstructed from the
images, as analyze --reconstruct) and, for
particles simulated by `cryomotion simulate`, the RMSD to the truth. DIR/compare.tsv holds
the numbers. Running the same command again reuses finished systems and resumes an
interrupted one.

example:
  cryomotion compare sim/particles.star sim/reference.pdb -o cmp --systems nma,segments \\
      --epochs 6 --box 32
"""

from __future__ import annotations

import argparse

from cryomotion.analysis.run_analysis import AnalysisConfig
from cryomotion.cli.flag_types import integer, real
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.particle_arguments import add_particle_arguments
from cryomotion.workflows.compare import CompareSettings, run_compare

# particle flags passed on to every ``cryomotion train``
PASSED_ON = ("poses", "ctf", "pixel_size", "amplitude_contrast", "voltage",
             "spherical_aberration", "dataset_dir")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("particles", help="particles (.star, .cs, or a stack with --poses/--ctf)")
    parser.add_argument("model", help="reference atomic model (PDB/mmCIF)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    add_force_argument(parser, "write DIR even inside a run or dataset folder")
    parser.add_argument("--systems", help="comma-separated systems (default: all registered ones)")
    parser.add_argument("--epochs", type=integer(1), default=10, help="epochs per system")
    parser.add_argument(
        "--budget",
        type=real(above=0),
        metavar="MIN",
        help="wall-clock minutes per system instead of a fixed number of epochs",
    )
    parser.add_argument("--batch-size", type=integer(1), help="global batch size")
    parser.add_argument("--box", type=integer(8), help="training box (px): Fourier crop")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed (all systems)")
    parser.add_argument(
        "--test-fraction", type=real(minimum=0, below=1), default=0.1, help="held-out fraction"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda:N")
    parser.add_argument(
        "--invert-data", action="store_true", help="multiply the images by -1 (dark particles)"
    )
    parser.add_argument(
        "--reconstruct",
        action="store_true",
        help="also reconstruct each system's states from the data (half sets) and report "
        "the per-state model-vs-data FSC (as analyze --reconstruct)",
    )
    parser.add_argument(
        "--ground-truth", help="ground_truth.npz of a simulated dataset (default: beside it)"
    )
    add_particle_arguments(parser)


def train_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """The particle flags of ``args`` as ``cryomotion train`` flags."""
    flags: list[str] = []
    for name in PASSED_ON:
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    if args.invert_data:
        flags.append("--invert-data")
    return tuple(flags)


def run(args: argparse.Namespace) -> int:
    inputs = [args.particles, args.model, args.ground_truth]
    check_output(args.output, inputs, force=args.force, folder=True)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip()) if args.systems else ()
    settings = CompareSettings(
        systems=systems,
        epochs=args.epochs,
        budget_minutes=args.budget,
        batch_size=args.batch_size,
        box=args.box,
        seed=args.seed,
        test_fraction=args.test_fraction,
        device=args.device,
        train_args=train_flags(args),
    )
    analysis = AnalysisConfig(
        maps=False, reconstruct=args.reconstruct, ground_truth=args.ground_truth, seed=args.seed
    )
    result = run_compare(args.particles, args.model, args.output, settings, analysis)
    for name, row in result.rows.items():
        shown = ", ".join(f"{key} {value:.4g}" for key, value in row.items())
        print(f"{name}: {shown}")
    print(f"report: {result.report}")
    return 0

"""Analyse a training run: the latent landscape, states, motions, maps and a report.

Writes into DIR (default RUN/analysis): PCA of the latents with explained variance,
k-means states with their counts, the density of PC1 and its maxima, trajectories along
PC1..PCk as multi-model PDB files, a model (and an MRC map at the data's pixel size) per
state and per density maximum, one RELION star file per state (a subset of the input with
all its columns) and index lists, a ChimeraX script (analysis.cxc), plots (PNG and SVG),
and report.html, one self-contained page. When the particles were simulated by
`cryomotion simulate` (ground_truth.npz beside them), it adds the RMSD to the truth.

With --reconstruct, each state's particles are also reconstructed from the images (their
poses and CTFs, two half sets) on the grid of the state's model map: state_K_data.mrc,
and state_K_fsc.tsv/.png with the FSC between the data map and the model map
(model-vs-data, the check of model bias) and the half-map FSC; the report gets a
"Model vs data" section with the curves and the 0.5 / 0.143 resolutions. It works for
any particle format (.star, .cs, cryoDRGN stacks with .pkl files).

DIR may not be RUN itself nor lie inside another training run or a simulated dataset
folder, unless --force.

example:
  cryomotion analyze runs/adk --pcs 3 --states 8
  cryomotion analyze runs/adk --reconstruct -o runs/adk/analysis_fsc
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryomotion.analysis.run_analysis import AnalysisConfig, analyze_run
from cryomotion.cli.flag_types import integer
from cryomotion.cli.output_guard import add_force_argument, check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="training run folder")
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default RUN/analysis)"
    )
    add_force_argument(parser, "write DIR even inside another run or a dataset folder")
    parser.add_argument("--pcs", type=integer(1), default=3, help="principal components to sweep")
    parser.add_argument("--states", type=integer(1), default=8, help="k-means states")
    parser.add_argument("--frames", type=integer(2), default=10, help="frames per PC trajectory")
    parser.add_argument("--umap", action="store_true", help="UMAP embedding (needs umap-learn)")
    parser.add_argument("--no-maps", action="store_true", help="skip the MRC maps of the states")
    parser.add_argument(
        "--reconstruct",
        action="store_true",
        help="reconstruct each state from the data; model-vs-data and half-map FSC",
    )
    parser.add_argument("--ground-truth", help="ground_truth.npz of a simulated dataset")
    parser.add_argument("--seed", type=integer(0), default=0)


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_output(
            args.output,
            [args.ground_truth],
            force=args.force,
            folder=True,
            own=Path(args.run),
        )
    config = AnalysisConfig(
        n_pcs=args.pcs,
        n_states=args.states,
        n_frames=args.frames,
        use_umap=args.umap,
        maps=not args.no_maps,
        reconstruct=args.reconstruct,
        ground_truth=args.ground_truth,
        seed=args.seed,
    )
    result = analyze_run(args.run, args.output, config)
    for name, value in result.numbers.items():
        print(f"{name:>28}: {value:.3f}")
    print(f"report: {result.report}")
    return 0

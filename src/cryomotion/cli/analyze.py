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

With --polish-steps or --polish-candidates (the flags of `cryomotion train`), every
particle's latents are first polished against its own image with the run's checkpoint
(models/polish.py) and written to DIR/latents.npz (a log beside it), and the analysis
uses them; the run itself is left as it is.

DIR may not be RUN itself nor lie inside another training run or a simulated dataset
folder, unless --force.

example:
  cryomotion analyze runs/adk --pcs 3 --states 8
  cryomotion analyze runs/adk --reconstruct -o runs/adk/analysis_fsc
  cryomotion analyze runs/adk -o runs/adk/analysis_mean --polish-candidates 64 \\
      --polish-estimate mean
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryomotion.analysis.run_analysis import AnalysisConfig, analyze_run
from cryomotion.cli.flag_types import integer
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.polish_arguments import add_polish_arguments, requested_polish
from cryomotion.train.run import polish_run


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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (polish)")
    add_polish_arguments(parser.add_argument_group("polish at inference"))


def run(args: argparse.Namespace) -> int:
    polish = requested_polish(args)
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
    latents_path = None
    if polish is not None:
        out = Path(args.output) if args.output else Path(args.run) / "analysis"
        out.mkdir(parents=True, exist_ok=True)
        latents_path = polish_run(
            args.run, polish, out / "latents.npz", progress=not args.no_progress
        )
        print(f"polished latents: {latents_path}")
    result = analyze_run(args.run, args.output, config, latents_path)
    for name, value in result.numbers.items():
        print(f"{name:>28}: {value:.3f}")
    print(f"report: {result.report}")
    return 0

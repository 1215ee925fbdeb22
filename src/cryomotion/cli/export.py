"""Write the per-particle atomic models of a training run.

Each particle's model is the reference model deformed by the latents the run inferred
for it (for nma: moved along the normal modes by its amplitudes), in the reference
model's frame and atom order, so all models overlay in ChimeraX or PyMOL.

OUTPUT ending in .cif/.mmcif or .pdb: one multi-model file, a model per particle (in
the order of the selection). OUTPUT ending in .npz: ``coords`` (particles, atoms, 3)
float32 Å and ``indices`` (particles,), compact for any number of particles and what an
outside evaluation scores.

Particles: --all, or --indices (a .npy or text file of 0-based indices, or ranges like
0-99,120); by default the first 100 particles. --prior-samples N writes instead N models
decoded from latents drawn from a VAE run's prior N(0, I) (segments, atomvae; seeded by
--seed): the ensemble the run's generative model stands for (.npz: ``coords`` and
``latents``).

With --polish-steps or --polish-candidates (the flags of `cryomotion train`), every
particle's latents are first polished against its own image with the run's checkpoint
(models/polish.py; the candidates and their masses are learned from all particles, so
all are polished whatever is exported) and the models decoded from them; the run itself
is left as it is. `cryomotion analyze` with the same flags keeps the polished latents.

OUTPUT may not be an input (the run's files, its reference model or particle files, the
index file) nor lie inside a training run or simulated dataset folder, unless --force.

examples:
  cryomotion export run -o models.cif
  cryomotion export run -o all_models.npz --all
  cryomotion export run -o picked.pdb --indices 0-9,42
  cryomotion export run -o ensemble.npz --prior-samples 2048
  cryomotion export run -o mean_models.npz --all --polish-candidates 64 --polish-estimate mean
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from cryomotion.cli.flag_types import integer
from cryomotion.cli.output_guard import add_force_argument, check_output
from cryomotion.cli.polish_arguments import add_polish_arguments, requested_polish
from cryomotion.data.selection import parse_indices
from cryomotion.errors import InputError
from cryomotion.structure.io import check_fits_pdb
from cryomotion.train.results import export_models, export_prior_samples, load_run
from cryomotion.train.run import polish_run

DEFAULT_COUNT = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder written by 'cryomotion train'")
    parser.add_argument("-o", "--output", required=True, help="models.cif, models.pdb or .npz")
    add_force_argument(
        parser, "write OUTPUT even over an input file or inside a run or dataset folder"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every particle")
    which.add_argument("--indices", help="index file (.npy/.txt) or ranges like 0-99,120")
    which.add_argument(
        "--prior-samples",
        type=integer(1),
        metavar="N",
        help="N models from the latent prior instead of particles (VAE runs)",
    )
    parser.add_argument(
        "--seed", type=integer(0), default=0, help="seed of --prior-samples (default 0)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (polish)")
    add_polish_arguments(parser.add_argument_group("polish at inference"))


def run(args: argparse.Namespace) -> int:
    polish = requested_polish(args)
    if polish is not None and args.prior_samples:
        raise InputError("--prior-samples decodes the prior, not particles: expected no --polish-*")
    trained = load_run(args.run)
    data = trained.config.data
    inputs = [trained.paths.reference, trained.config.reference, args.indices]
    inputs += [data.particles, data.poses, data.ctf]
    check_output(args.output, inputs, force=args.force)
    check_fits_pdb(trained.reference, args.output)
    if args.prior_samples:
        path = export_prior_samples(trained, args.output, args.prior_samples, args.seed)
        print(f"wrote {args.prior_samples} models from the prior to {path}")
        return 0
    n_particles = trained.n_particles
    if args.all:
        indices = np.arange(n_particles)
    elif args.indices:
        indices = parse_indices(args.indices, n_particles)
    else:
        indices = np.arange(min(DEFAULT_COUNT, n_particles))
    if polish is not None:
        with tempfile.TemporaryDirectory(prefix="cryomotion-polish-") as folder:
            latents = polish_run(
                args.run, polish, Path(folder) / "latents.npz", progress=not args.no_progress
            )
            trained = load_run(args.run, latents)
    path = export_models(trained, args.output, indices)
    print(f"wrote {len(indices)} particle models to {path}")
    return 0

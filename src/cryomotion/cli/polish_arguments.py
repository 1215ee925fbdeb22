"""The per-particle polish flags that train, export and analyze share, and their settings.

``--polish-steps``, ``--polish-prior``, ``--polish-candidates``, ``--polish-estimate`` and
``--polish-box`` mean the same in every verb: ``train`` polishes when it writes the
latents, ``export`` and ``analyze`` re-polish a finished run's particles with its
checkpoint (``train.run.polish_run``) and leave the run itself as it is.
"""

from __future__ import annotations

import argparse

from cryomotion.cli.flag_types import integer
from cryomotion.errors import InputError
from cryomotion.models.polish import ESTIMATES as POLISH_ESTIMATES
from cryomotion.models.polish import PRIORS as POLISH_PRIORS
from cryomotion.train.config import ModelConfig


def add_polish_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--polish-steps",
        type=integer(0),
        help="per-particle polish: N gradient steps on each image's loss over its latents and "
        "pose correction, from the encoder's estimate (default 0: off)",
    )
    parser.add_argument(
        "--polish-prior",
        choices=POLISH_PRIORS,
        help="the latents' prior in the polish steps: empirical (default: a Gaussian fitted to "
        "the encoder's latents) or none (maximum likelihood)",
    )
    parser.add_argument(
        "--polish-candidates",
        type=integer(0),
        help="before the polish steps, each particle starts from the best of its encoder's "
        "latents and K k-means centres of all particles' latents (default 0: its own)",
    )
    parser.add_argument(
        "--polish-estimate",
        choices=POLISH_ESTIMATES,
        help="with --polish-candidates: start from the best candidate (map, default) or from "
        "the posterior mean over the candidates, each weighted by its likelihood and the "
        "share of particles nearest it (mean)",
    )
    parser.add_argument(
        "--polish-box",
        type=integer(2),
        help="compare the polish's models with the images at this box (px; default: the "
        "training box; the stacks' box uses the frequencies a run trained on Fourier crops "
        "never saw)",
    )


def polish_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The config overrides (``model.polish_*``) of the flags given; None where not given."""
    return {
        "model.polish_steps": args.polish_steps,
        "model.polish_prior": args.polish_prior,
        "model.polish_candidates": args.polish_candidates,
        "model.polish_estimate": args.polish_estimate,
        "model.polish_box": args.polish_box,
    }


def requested_polish(args: argparse.Namespace) -> dict[str, object] | None:
    """For a verb that re-polishes a finished run (export, analyze): None when no polish
    flag is given, else the overrides of all five settings, those not given at their
    defaults (no steps, the empirical prior, no candidates, map, the training box)
    whatever the run was trained with, so that the flags alone say what the polish does;
    ``InputError`` for --polish-prior, --polish-estimate or --polish-box without steps
    or candidates to apply them to."""
    given = {key: value for key, value in polish_overrides(args).items() if value is not None}
    if not given:
        return None
    if not (args.polish_steps or args.polish_candidates):
        flags = ", ".join("--" + key.split(".")[1].replace("_", "-") for key in given)
        raise InputError(
            f"{flags}: expected --polish-steps N or --polish-candidates K (above 0) to polish with"
        )
    defaults = {key: getattr(ModelConfig, key.split(".")[1]) for key in polish_overrides(args)}
    return {**defaults, **given}

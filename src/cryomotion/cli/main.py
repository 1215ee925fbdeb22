"""The ``cryomotion`` command: one entry point, one module per verb.

Each verb module in ``cryomotion.cli`` has a docstring (its help text, with an example),
``add_arguments(parser)`` and ``run(args) -> int``. Verb modules are imported only when
their verb is used, so ``cryomotion --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from cryomotion import __version__
from cryomotion.errors import InputError

# verb -> (module, one-line summary)
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("cryomotion.cli.demo", "simulate AdK, train the NMA autoencoder, report (a tour)"),
    "simulate": ("cryomotion.cli.simulate", "simulate a particle dataset with ground truth"),
    "project": (
        "cryomotion.cli.project",
        "render a model with each particle's pose and CTF",
    ),
    "nma": ("cryomotion.cli.nma", "normal modes of an elastic network model"),
    "train": ("cryomotion.cli.train", "train a motion model on particles"),
    "export": ("cryomotion.cli.export", "write the per-particle atomic models of a run"),
    "analyze": ("cryomotion.cli.analyze", "latent landscape, states, motions, maps, report"),
}


def _available_verbs() -> dict[str, tuple[str, str]]:
    return {
        verb: entry
        for verb, entry in VERBS.items()
        if importlib.util.find_spec(entry[0]) is not None
    }


def build_parser(verbs: dict[str, tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    verbs = _available_verbs() if verbs is None else verbs
    parser = argparse.ArgumentParser(
        prog="cryomotion",
        description="Motions of macromolecules from cryo-EM particle images, as atomic models.",
    )
    parser.add_argument("--version", action="version", version=f"cryomotion {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (_, summary) in verbs.items():
        sub.add_parser(verb, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbs = _available_verbs()
    if not argv or argv[0] not in verbs:
        parser = build_parser(verbs)
        if not argv:
            parser.print_help()
            return 0
        parser.parse_args(argv)  # prints the usage error or --help/--version
        return 0
    verb = argv[0]
    module = importlib.import_module(verbs[verb][0])
    parser = argparse.ArgumentParser(
        prog=f"cryomotion {verb}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return int(module.run(args) or 0)
    except InputError as err:
        print(f"cryomotion {verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryomotion {verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

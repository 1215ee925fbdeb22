"""The ``cryomotion`` command: one entry point, one module per verb.

Each verb module in ``cryomotion.cli`` has a docstring (its help text, with an example),
``add_arguments(parser)`` and ``run(args) -> int``. Verb modules are imported only when
their verb is used, so ``cryomotion --help`` stays fast.

Errors reach the user as one line on stderr. Bad input (``InputError``, or a flag out of
range) exits with status 2. Anything unexpected exits with status 1 and prints
``cryomotion VERB: error: Type: message (details in LOG)``; the traceback goes to LOG:
the run's ``train.log`` for a ``train`` whose run folder exists, else
``cryomotion-error.log`` in the current folder (or in the system's temporary folder when
the current one is not writable). ``CRYOMOTION_DEBUG=1`` lets the exception through, with
its traceback, instead. A verb module names its own log with ``error_log(args)``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import logging
import os
import shlex
import sys
import tempfile
import traceback
from pathlib import Path

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
    "reconstruct": ("cryomotion.cli.reconstruct", "3-D map, half maps and FSC from particles"),
    "compare": ("cryomotion.cli.compare", "train several systems on the same particles, compare"),
}


ERROR_LOG_NAME = "cryomotion-error.log"
DEBUG_VARIABLE = "CRYOMOTION_DEBUG"


class VerbParser(argparse.ArgumentParser):
    """A verb's parser whose usage errors are one line (status 2), not the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def _write_error_log(module, args: argparse.Namespace, argv: list[str]) -> Path | None:
    """Append the current exception's traceback to the verb's log; return its path."""
    candidates = []
    error_log = getattr(module, "error_log", None)
    if error_log is not None:
        try:
            candidates.append(error_log(args))
        except Exception:  # noqa: BLE001 - the log is a best effort; the error comes first
            pass
    candidates += [Path.cwd() / ERROR_LOG_NAME, Path(tempfile.gettempdir()) / ERROR_LOG_NAME]
    text = (
        f"{datetime.datetime.now().isoformat(timespec='seconds')} "
        f"{shlex.join(['cryomotion', *argv])}\n{traceback.format_exc()}"
    )
    for path in candidates:
        if path is None:
            continue
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text)
            return Path(path)
        except OSError:
            continue
    return None


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
    parser = VerbParser(
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
    except Exception as err:
        if _debug():
            raise
        log_path = _write_error_log(module, args, argv)
        message = " ".join(str(err).split()) or "(no message)"
        where = f"details in {log_path}" if log_path else f"{DEBUG_VARIABLE}=1 shows the details"
        print(
            f"cryomotion {verb}: error: {type(err).__name__}: {message} ({where})", file=sys.stderr
        )
        return 1


def console() -> int:
    """The ``cryomotion`` command: ``main`` in a process of its own, whose CPU threads it
    chooses first (``train.threads``: the cores other processes leave free)."""
    argv = sys.argv[1:]
    if argv and argv[0] in VERBS and not {"-h", "--help"} & set(argv):
        from cryomotion.train.threads import configure_threads  # noqa: PLC0415 - imports torch

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        configure_threads()
    return main(argv)


if __name__ == "__main__":
    sys.exit(console())

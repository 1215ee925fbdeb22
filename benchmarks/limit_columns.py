"""The information limit beside every per-particle accuracy table of docs/results.md.

Each benchmark section below scores per-particle models on simulated data with a known
path; this script regenerates its datasets with the benchmark's own ``simulate`` (the
simulations are deterministic in their seed), computes each dataset's information limit
(``dataset_limit``: the posterior mean of the true frames given each image, on 300
particles) and writes it into the section's tables: a column *limit (width)* after the
rigid baseline (the posterior's width in brackets), or, in a two-column table, a row after
the rigid reference's. Where a table's rows are normal-mode or segments runs, a *ceiling*
column follows, from the data alone (median Cα-RMSD over the particles):

- normal modes ("NMA d = 16"): the true frames projected on the d ANM modes of the
  reference (``NormalModeSettings``' defaults; ``information_limit.projected_on_modes``);
- segments ("segments N = 6"): the best any N contiguous segments of the chain, each moved
  rigidly onto the frame, can do, with one partition for all frames, the one of least
  squared residual summed over the particles (``analysis.segment_ceiling``). The learned
  segments of those runs are not kept; as far as they are hard and contiguous ranges of the
  chain (cryoSPHERE's memberships need not be) this bounds what their latent space holds.

Other rows get "–".

Before it writes a limit it checks that the regenerated data are the table's: their rigid
baseline (the reference for every particle, from the ground truth alone) must equal the
table's rigid column to its two decimals; a row whose data differ gets "–" and the script
says so.

The trained systems' numbers in the tables are not recomputed. Run this after any of these
benchmarks has rewritten its section (sections ``information_limit`` and ``compare_adk``
compute their limit themselves).

Usage::

    python benchmarks/limit_columns.py --workdir /tmp/limit_columns     # ~30 min, 1 thread
    python benchmarks/limit_columns.py --sections units_check --no-write
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import information_limit
import nma_hinge
import seed000_adk
import seed002_adk
import seed003_adk
from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.analysis.segment_ceiling import segment_ceiling
from cryomotion.simulate.conformations import DISTRIBUTIONS
from cryomotion.structure.io import read_model
from cryomotion.systems.nma import NormalModeSettings, reference_modes
from dataset_limit import dataset_limit, limit_cell, rigid_baseline
from report import DOCS

COLUMN = "limit (width)"
CEILING = "ceiling"
CEILING_NOTE = (
    "*ceiling*: the median Cα-RMSD of the closest conformation the row's latent space can "
    "hold to each true frame: for NMA d, the frame projected on the d ANM modes of the "
    "reference (`NormalModeSettings`' network; the best any amplitudes can do); for segments "
    "N, the best any N contiguous segments of the chain (≥ 3 residues each), each moved "
    "rigidly onto the frame, can do, with one partition for all particles, the one of least "
    "squared residual (`analysis.segment_ceiling`; the learned segments were not kept, so "
    "this bounds them only as far as they are contiguous ranges of the chain); – for other "
    "systems."
)
ROW = "information limit (posterior mean of the true frames; posterior width)"
NOTE = (
    "*limit (width)*: the information limit of the same images (`benchmarks/"
    "limit_columns.py`: the posterior mean of the true frames given each image, exact "
    "likelihood, median Cα-RMSD over 300 particles; no method beats it on average), with the "
    "posterior's width in brackets."
)


@dataclass
class Section:
    """A docs section, its datasets (key -> a function simulating it and returning the
    folder of its raw, renderer-unit data) and how a table row names its dataset."""

    name: str
    datasets: dict[object, Callable[[Path], Path]]
    row_key: Callable[[list[str]], object]
    after: str  # the column the limit follows (a two-column table: the row's first cell)
    rigid: str | None  # the table's rigid-baseline column (None: no check)
    modes: Callable[[list[str]], int | None] | None = None  # a row's ANM modes d, or None
    segments: Callable[[list[str]], int | None] | None = None  # a row's segments N, or None

    @property
    def has_ceiling(self) -> bool:
        return self.modes is not None or self.segments is not None

    def deformation(self, cells: list[str]) -> tuple[str, int] | None:
        """("nma", d) or ("segments", N) of a table row, or None."""
        d = self.modes(cells) if self.modes is not None else None
        if d is not None:
            return "nma", d
        n = self.segments(cells) if self.segments is not None else None
        return None if n is None else ("segments", n)


def seed000_args(**changes) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    seed000_adk.add_dataset_arguments(parser)
    args = parser.parse_args([])
    for name, value in changes.items():
        setattr(args, name, value)
    return args


def seed000_data(snr_db: float, distribution: str, particles: int) -> Callable[[Path], Path]:
    def make(workdir: Path) -> Path:
        folder = workdir / "seed000" / f"snr{snr_db:g}dB" / f"{distribution}_{particles}"
        args = seed000_args(particles=particles)
        return seed000_adk.simulate(distribution, snr_db, args, folder)["ground_truth"].parent

    return make


def hinge_data(snr_db: float) -> Callable[[Path], Path]:
    def make(workdir: Path) -> Path:
        parser = argparse.ArgumentParser()
        information_limit.add_dataset_arguments(parser, epochs=12)
        args = parser.parse_args([])
        return information_limit.simulate(snr_db, args, workdir / "hinge" / f"snr{snr_db:g}dB")[
            "raw"
        ]

    return make


def nma_hinge_data(path: str, snr_db: float) -> Callable[[Path], Path]:
    def make(workdir: Path) -> Path:
        args = argparse.Namespace(
            workdir=workdir / "nma_hinge", particles=800, frames=50, box=64, pixel_size=1.5, seed=0
        )
        nma_hinge.simulate(path, snr_db, args)
        return args.workdir / f"{path.replace(' ', '_')}_{snr_db:g}dB" / "raw"

    return make


def seed002_data(workdir: Path) -> Path:
    args = argparse.Namespace(
        workdir=workdir / "seed002",
        frames=50,
        particles=4096,
        box=32,
        pixel_size=3.0,
        snr=0.3,
        seed=0,
    )
    return seed002_adk.simulate(args)["ground_truth"].parent


def seed003_data(snr: float) -> Callable[[Path], Path]:
    def make(workdir: Path) -> Path:
        args = argparse.Namespace(
            particles=1000, frames=20, box=40, pixel_size=2.0, snr=snr, seed=0
        )
        return seed003_adk.simulate(args, workdir / f"seed003_snr{snr:g}")

    return make


def mode_ceiling(folder: Path, d: int) -> float:
    """Median over the particles of the Cα-RMSD (Å) of each true frame projected on the d
    lowest ANM modes of the dataset's reference (``NormalModeSettings``' network)."""
    if d == 0:  # no modes: the reference itself
        return rigid_baseline(folder)
    reference = read_model(folder / "reference.pdb")
    with np.load(folder / "ground_truth.npz", allow_pickle=False) as truth:
        frames = truth["frame_coords"].astype(np.float64)
        index = truth["frame_index"]
    modes = reference_modes(reference, d, NormalModeSettings())
    coords = reference.coords.astype(np.float64)
    projected = information_limit.projected_on_modes(modes.vectors, coords, frames)
    ca = reference.ca_index[reference.ca_index >= 0]
    per_frame = per_particle_rmsd(projected[:, ca], frames[:, ca])
    return float(np.median(per_frame[index]))


def contiguous_segments_ceiling(folder: Path, n: int) -> float:
    """Median over the particles of the Cα-RMSD (Å) of each true frame to the best any n
    contiguous segments of the reference's chain, each superposed rigidly, can do (one
    partition for all frames, each frame weighted by its particles: ``segment_ceiling``)."""
    reference = read_model(folder / "reference.pdb")
    ca = reference.ca_index[reference.ca_index >= 0]
    with np.load(folder / "ground_truth.npz", allow_pickle=False) as truth:
        frames = truth["frame_coords"][:, ca].astype(np.float64)
        index = truth["frame_index"]
    weights = np.bincount(index, minlength=len(frames))
    fit = segment_ceiling(reference.coords[ca], frames, n, weights, reference.chain_ids[ca])
    return float(np.median(fit.rmsd[index]))


def nma_modes(cells: list[str]) -> int | None:
    """d of a row naming its system "NMA d = 16" (any column), else None."""
    for cell in cells:
        match = re.fullmatch(r"NMA d = (\d+)", cell)
        if match:
            return int(match.group(1))
    return None


def segment_count(cells: list[str]) -> int | None:
    """N of a row naming its system "segments N = 6" (any column), else None."""
    for cell in cells:
        match = re.fullmatch(r"segments N = (\d+)", cell)
        if match:
            return int(match.group(1))
    return None


def snr_key(cells: list[str]) -> float | None:
    try:
        return float(cells[0].replace("−", "-"))
    except ValueError:
        return None


def snr_distribution_key(cells: list[str]) -> tuple | None:
    snr = snr_key(cells)
    return None if snr is None else (snr, cells[1])


def nma_hinge_key(cells: list[str]) -> tuple | None:
    match = re.fullmatch(r"(.+) (-?[\d.]+) dB", cells[0])
    return None if match is None else (match.group(1), float(match.group(2)))


MODE_COUNTS = (0, 1, 16)  # the d of the normal-mode rows of these tables
SEGMENT_COUNTS = (6,)  # the N of the segments rows

SEED000 = {
    (snr, distribution): seed000_data(snr, distribution, 16000)
    for snr in (-20.0, -10.5)
    for distribution in DISTRIBUTIONS
}
SECTIONS = [
    Section(
        "seed000",
        SEED000,
        snr_distribution_key,
        "rigid baseline (Å)",
        "rigid baseline (Å)",
        lambda cells: int(cells[2]),
    ),
    Section(
        "seed001",
        SEED000,
        snr_distribution_key,
        "rigid baseline",
        "rigid baseline",
        nma_modes,
        segment_count,
    ),
    Section(
        "snr_sweep",
        {
            snr: seed000_data(snr, "continuous", n)
            for snr, n in ((-10.0, 8000), (-20.0, 8000), (-30.0, 12000))
        },
        snr_key,
        "rigid baseline (Å)",
        "rigid baseline (Å)",
        nma_modes,
        segment_count,
    ),
    Section(
        "seed002",
        {"file": seed002_data},
        lambda cells: "file" if cells[0] in ("given", "infer") else None,
        "rigid median (Å)",
        "rigid median (Å)",
    ),
    Section(
        "seed003",
        {0: seed003_data(0.1)},
        lambda cells: 0,
        "rigid reference",
        "rigid reference",
    ),
    Section(
        "seed003_snr0.03",
        {0: seed003_data(0.03)},
        lambda cells: 0,
        "rigid reference",
        "rigid reference",
    ),
    Section(
        "segments_collapse",
        {snr: hinge_data(snr) for snr in (-10.0, -20.0, -30.0)},
        snr_key,
        "RMSD (Å)",
        None,
        segments=lambda cells: 6,  # every row: segments N = 6 (the section's set-up)
    ),
    Section(
        "nma_hinge",
        {(path, snr): nma_hinge_data(path, snr) for path, snr in nma_hinge.DATASETS},
        nma_hinge_key,
        "rigid",
        "rigid",
    ),
    Section(
        "units_check",
        {0: hinge_data(-20.0)},
        lambda cells: 0,
        "rigid",
        "rigid",
        segments=lambda cells: 6,  # every row: segments with its default N = 6
    ),
]


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def join_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def annotate(
    text: str, section: Section, limits: dict, rigids: dict, ceilings: dict | None = None
) -> tuple[str, list[str]]:
    """The section's markdown with the limit in every table that has ``section.after`` (and
    the ceilings, ``ceilings`` (dataset key, "nma" or "segments", d or N) -> Å, where
    ``section.has_ceiling``); and the messages of rows left at "–" (their data differ from
    the table's)."""
    note = NOTE + (" " + CEILING_NOTE if section.has_ceiling else "")
    # the note a previous run wrote goes (with its blank line) and is written again
    lines = []
    for line in text.split("\n"):
        if line.startswith(NOTE):
            if lines and not lines[-1].strip():
                lines.pop()
            continue
        lines.append(line)
    out: list[str] = []
    messages: list[str] = []
    noted = False
    i = 0
    while i < len(lines):
        is_table = (
            lines[i].startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|[\s:|-]+\|", lines[i + 1].strip()) is not None
        )
        if not is_table:
            out.append(lines[i])
            i += 1
            continue
        header = split_row(lines[i])
        end = i + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        rows = [split_row(line) for line in lines[i + 2 : end]]
        annotated = True
        if len(header) == 2 and any(row[0] == section.after for row in rows):
            table = two_column(header, lines[i + 1], rows, section, limits, rigids, messages)
        elif section.after in header:
            table = with_column(
                header, lines[i + 1], rows, section, limits, rigids, messages, ceilings or {}
            )
        else:
            table, annotated = lines[i:end], False
        out.extend(table)
        if annotated and not noted:  # the note once, after the section's first such table
            out.extend(["", note])
            noted = True
        i = end
    return "\n".join(out), messages


def checked_cell(key, rigid_text: str | None, limits, rigids, messages, where: str) -> str:
    if key not in limits:
        return "–"
    if rigid_text is not None:
        try:
            table_rigid = float(rigid_text.replace("−", "-"))
        except ValueError:
            table_rigid = None
        if table_rigid is not None and abs(table_rigid - rigids[key]) > 0.0051:
            messages.append(
                f"{where} {key}: the table's rigid baseline {table_rigid} differs from the "
                f"regenerated data's {rigids[key]:.3f}; limit left out"
            )
            return "–"
    return limit_cell(limits[key])


def with_column(header, separator, rows, section, limits, rigids, messages, ceilings) -> list[str]:
    names = [COLUMN] + ([CEILING] if section.has_ceiling else [])
    keep = [k for k, name in enumerate(header) if name not in (COLUMN, CEILING)]  # rerun
    header = [header[k] for k in keep]
    aligns = [split_row(separator)[k] for k in keep]
    at = header.index(section.after) + 1
    rigid_at = header.index(section.rigid) if section.rigid in header else None
    out = [
        join_row(header[:at] + names + header[at:]),
        "|" + "|".join(aligns[:at] + ["---:"] * len(names) + aligns[at:]) + "|",
    ]
    for row in rows:
        row = [row[k] for k in keep]
        key = section.row_key(row)
        rigid_text = row[rigid_at] if rigid_at is not None else None
        cells = [checked_cell(key, rigid_text, limits, rigids, messages, section.name)]
        if section.has_ceiling:
            deformation = section.deformation(row)
            ceiling = None if deformation is None else ceilings.get((key, *deformation))
            known = ceiling is not None and cells[0] != "–"
            cells.append(f"{ceiling:.2f}" if known else "–")
        out.append(join_row(row[:at] + cells + row[at:]))
    return out


def two_column(header, separator, rows, section, limits, rigids, messages) -> list[str]:
    rows = [row for row in rows if row[0] != ROW]
    out = [join_row(header), separator]
    for row in rows:
        out.append(join_row(row))
        if row[0] == section.after:
            key = section.row_key(row)
            cell = checked_cell(key, row[1], limits, rigids, messages, section.name)
            out.append(join_row([ROW, cell]))
    return out


def section_bounds(document: str, name: str) -> tuple[int, int]:
    """Start and end offsets of the text between the section's BEGIN and END markers."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    return document.index(begin) + len(begin), document.index(end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/limit_columns"))
    parser.add_argument("--sections", nargs="+", default=[s.name for s in SECTIONS])
    parser.add_argument("--particles", type=int, default=300, help="particles per limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = DOCS / "results.md"
    document = path.read_text()
    computed: dict[int, tuple[dict, float]] = {}  # id of a dataset's maker -> (limit, rigid)
    computed_ceilings: dict[tuple[int, str, int], float] = {}
    for section in (s for s in SECTIONS if s.name in args.sections):
        limits, rigids = {}, {}
        for key, make in section.datasets.items():
            if id(make) not in computed:
                folder = make(args.workdir)
                limit = dataset_limit(folder, args.particles, args.seed)
                computed[id(make)] = (limit, rigid_baseline(folder))
                print(
                    section.name,
                    key,
                    folder,
                    limit_cell(limit),
                    f"rigid {computed[id(make)][1]:.3f}",
                    flush=True,
                )
            limits[key], rigids[key] = computed[id(make)]
        ceilings = {}
        wanted = [("nma", d, mode_ceiling) for d in MODE_COUNTS if section.modes is not None]
        wanted += [
            ("segments", n, contiguous_segments_ceiling)
            for n in SEGMENT_COUNTS
            if section.segments is not None
        ]
        for key, make in section.datasets.items():
            for kind, count, ceiling in wanted:
                if (id(make), kind, count) not in computed_ceilings:
                    value = ceiling(make(args.workdir), count)
                    computed_ceilings[id(make), kind, count] = value
                    print(section.name, key, f"ceiling {kind} {count}: {value:.3f}", flush=True)
                ceilings[key, kind, count] = computed_ceilings[id(make), kind, count]
        start, stop = section_bounds(document, section.name)
        text, messages = annotate(document[start:stop], section, limits, rigids, ceilings)
        document = document[:start] + text + document[stop:]
        for message in messages:
            print(message, flush=True)
    if args.no_write:
        print(document)
    else:
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(document)
        tmp.replace(path)
        print(path)


if __name__ == "__main__":
    main()

"""How the cost of training grows with particles, atoms and box size, with fitted exponents.

Each point is a fresh dataset (simulated once in its own process: rigid copies of AdK,
SNR 0.1, uniform poses) and a fresh ``cryomotion train SYSTEM`` process of one epoch
(10 % of the particles held out and inferred), so that the peak resident memory
(``wait4``) is that point's alone. Three axes, the others held at the base values:

- particles N (AdK, 64 px at 1.5 Å/px): epoch time and memory against N;
- atoms n (1, 2, 4, 8, 16 copies of AdK heavy atoms in a compact block, 128 px at 1.8 Å/px,
  one chain per copy): time per particle, set-up time (model, normal modes) and memory;
- box D (AdK, a fixed 96-Å field of view, D = 32 … 192 px): time per particle and memory;
- a big complex (64 copies, ~10^5 atoms, 128 px): all atoms against ``--coarse`` (one bead
  per residue), with the projection method the renderer chose, read from the run's log.

The exponent of each quantity is the slope of a least-squares line through
(log x, log y) over the axis's points; the *last-step* exponent uses the two largest
points only (the asymptotic regime, where fixed costs no longer hide the growth).
Results go to the ``cost_growth`` section of docs/performance.md.

Usage::

    python benchmarks/cost_growth.py                        # nma, every axis (~10-20 min)
    python benchmarks/cost_growth.py --axes box --boxes 32 64 --particles-per-point 300
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from report import write_section

BASE_PARTICLES = 1000


def tiled_adk(copies: int):
    """``copies`` rigid copies of the bundled AdK heavy-atom model in a compact block, one
    chain (A, B, …, then C26, …) per copy, spaced by the Cα extent along each axis so that
    the copies touch (one connected elastic network, as in ``nma_scaling.py``)."""
    from cryomotion.simulate.adk import adk_morph
    from cryomotion.structure.model import AtomicModel

    model = adk_morph(2)[0]
    centred = model.coords - model.coords.mean(0)
    spacing = np.ptp(centred[model.ca_index], axis=0)
    per_axis = math.ceil(copies ** (1 / 3) - 1e-9)
    cells = np.array(list(np.ndindex(per_axis, per_axis, per_axis)), dtype=float)
    cells = cells[np.lexsort((cells[:, 0], cells[:, 1], cells[:, 2]))][:copies]
    offsets = (cells - cells.mean(0)) * spacing
    coords = (centred[None] + offsets[:, None]).reshape(-1, 3)
    # letters while a PDB file can hold them, then "C26", "C27", … (mmCIF)
    names = [chr(ord("A") + k) if k < 26 else f"C{k}" for k in range(copies)]
    chain_ids = np.repeat(names, model.n_atoms)
    fields = {
        name: np.tile(getattr(model, name), copies)
        for name in (
            "elements", "atom_names", "residue_names", "residue_numbers", "insertion_codes",
            "b_factors", "occupancies", "is_hetero",
        )
    }  # fmt: skip
    return AtomicModel(coords=coords, chain_ids=chain_ids, **fields)


def simulate_worker(spec: dict) -> None:
    """Simulate one point's dataset (runs in its own process)."""
    from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset

    model = tiled_adk(spec["copies"])
    config = SimulationConfig(
        n_particles=spec["particles"], box=spec["box"], pixel_size=spec["pixel_size"],
        snr=0.1, seed=0, distribution="uniform", shift_std=1.0,
    )  # fmt: skip
    simulate_dataset(model, model.coords[None], config, spec["folder"], progress=False)


def run_process(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, its peak resident memory in MiB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read() if process.stderr is not None else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(command)} failed: {' | '.join(tail)}")
    return wall, usage.ru_maxrss / 1024.0


def measure_point(
    root: Path, axis: str, value, spec: dict, args, extra: tuple[str, ...] = ()
) -> dict:
    """Simulate (once per dataset folder) and train one point; return its measurements."""
    data = root / f"{axis}_{spec['copies']}_{spec['box']}_{spec['particles']}"
    folder = root / f"{axis}_{value}"
    if not (data / "simulation.yaml").exists():
        spec = {**spec, "folder": str(data)}
        run_process([sys.executable, __file__, "--simulate-worker", json.dumps(spec)])
    reference = data / ("reference.pdb" if (data / "reference.pdb").exists() else "reference.cif")
    run_dir = folder / "run"
    command = [
        sys.executable, "-m", "cryomotion.cli.main", "train", args.system,
        str(data / "particles.star"), str(reference), "-o", str(run_dir),
        "--epochs", "1", "--seed", "0", "--test-fraction", "0.1", "--no-progress",
        *args.train_args, *extra,
    ]  # fmt: skip
    wall, rss = run_process(command)
    drawn = [
        line.split(" INFO ", 1)[-1]
        for line in (run_dir / "train.log").read_text().splitlines()
        if "renderer: " in line or "projection " in line
    ]
    with (run_dir / "metrics.csv").open() as handle:
        row = list(csv.DictReader(handle))[-1]
    rate = float(row["particles_per_s"])
    epoch = float(row["epoch_seconds"])
    n_train = spec["particles"] - round(0.1 * spec["particles"])
    return {
        "axis": axis,
        "value": value,
        "atoms": spec["copies"] * 1656,
        "box": spec["box"],
        "particles": spec["particles"],
        "train_rate": rate,
        "ms_per_particle": 1000.0 / rate,
        "epoch_seconds": epoch,
        "epoch_ms_per_particle": 1000.0 * epoch / n_train,
        "setup_seconds": max(wall - epoch, 0.0),
        "wall": wall,
        "peak_mib": rss,
        "renderer": drawn,
    }


def exponent(x, y) -> tuple[float, float]:
    """(slope over all points, slope over the last two) of log y against log x."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    overall = float(np.polyfit(lx, ly, 1)[0]) if len(lx) > 1 else math.nan
    last = float((ly[-1] - ly[-2]) / (lx[-1] - lx[-2])) if len(lx) > 1 else math.nan
    return overall, last


def axis_specs(args) -> dict[str, list[tuple[int, dict]]]:
    field_of_view = 96.0
    return {
        "particles": [
            (n, {"copies": 1, "box": 64, "pixel_size": 1.5, "particles": n})
            for n in args.particles
        ],
        "atoms": [
            (c, {"copies": c, "box": 128, "pixel_size": 1.8, "particles": args.particles_per_point})
            for c in args.copies
        ],
        "box": [
            (
                d,
                {
                    "copies": 1, "box": d, "pixel_size": field_of_view / d,
                    "particles": args.particles_per_point,
                },
            )  # fmt: skip
            for d in args.boxes
        ],
    }


def complex_table(points: list[dict]) -> list[str]:
    """The big-complex rows: all atoms against one bead per residue."""
    p0 = points[0]
    lines = [
        f"**A big complex**: {p0['atoms'] // 1656} copies of AdK in a compact block "
        f"({p0['atoms']:,} heavy atoms, {p0['atoms'] // 1656 * 214:,} residues), {p0['box']} px "
        f"at 1.8 Å/px, {p0['particles']} particles, one epoch:",
        "",
        "| rendered | train ms/particle | epoch ms/particle (incl. test) | set-up s | peak MiB | "
        "renderer (from the run's log) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for p in points:
        lines.append(
            f"| {p['value']} | {p['ms_per_particle']:.1f} | {p['epoch_ms_per_particle']:.1f} | "
            f"{p['setup_seconds']:.1f} | {p['peak_mib']:,.0f} | {'; '.join(p['renderer'])} |"
        )
    return lines


AXIS_TEXT_ORDER = ("particles", "atoms", "box", "complex")
AXIS_TEXT = {
    "particles": ("particles N", "particles", "AdK (1,656 heavy atoms), 64 px at 1.5 Å/px"),
    "atoms": ("heavy atoms n", "atoms", "copies of AdK, 128 px at 1.8 Å/px"),
    "box": ("box D (px)", "box", "AdK, 96-Å field of view"),
}


def table(axis: str, points: list[dict]) -> list[str]:
    label, key, setting = AXIS_TEXT[axis]
    lines = [
        f"**Against {label}** ({setting}; "
        f"{points[0]['particles'] if axis != 'particles' else 'N'} particles, one epoch):",
        "",
        f"| {label} | train ms/particle | epoch ms/particle (incl. test) | epoch s | "
        "set-up s | peak MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p[key]:,} | {p['ms_per_particle']:.2f} | {p['epoch_ms_per_particle']:.2f} | "
            f"{p['epoch_seconds']:.1f} | {p['setup_seconds']:.1f} | {p['peak_mib']:,.0f} |"
        )
    x = [p[key] for p in points]
    measures = [
        ("epoch time" if axis == "particles" else "time per particle",
         [p["epoch_seconds"] if axis == "particles" else p["ms_per_particle"] for p in points]),
        ("set-up time", [p["setup_seconds"] for p in points]),
        ("peak memory", [p["peak_mib"] for p in points]),
    ]  # fmt: skip
    parts = []
    for name, y in measures:
        overall, last = exponent(x, y)
        parts.append(f"{name} ∝ {key}^{overall:.2f} (last step {last:.2f})")
    lines += ["", "Exponents: " + "; ".join(parts) + "."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="nma")
    parser.add_argument(
        "--axes", nargs="+", default=["particles", "atoms", "box", "complex"],
        choices=["particles", "atoms", "box", "complex"],
    )  # fmt: skip
    parser.add_argument("--particles", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--boxes", type=int, nargs="+", default=[32, 64, 128, 192])
    parser.add_argument("--particles-per-point", type=int, default=BASE_PARTICLES)
    parser.add_argument(
        "--complex-copies", type=int, default=64,
        help="copies of AdK in the big-complex axis (64: ~10^5 atoms)",
    )  # fmt: skip
    parser.add_argument("--complex-particles", type=int, default=200)
    parser.add_argument(
        "--train-args", nargs=argparse.REMAINDER, default=[],
        help="further `cryomotion train` flags (last on the line)",
    )  # fmt: skip
    parser.add_argument("--save-json", type=Path)
    parser.add_argument(
        "--reuse-json", type=Path,
        help="results of an earlier --save-json: its axes not in --axes go into the table too",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    parser.add_argument("--simulate-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate_worker:
        simulate_worker(json.loads(args.simulate_worker))
        return

    started = datetime.datetime.now()
    results: dict[str, list[dict]] = {}
    specs = axis_specs(args)
    with tempfile.TemporaryDirectory() as tmp:
        for axis in args.axes:
            results[axis] = []
            if axis == "complex":
                spec = {
                    "copies": args.complex_copies, "box": 128, "pixel_size": 1.8,
                    "particles": args.complex_particles,
                }  # fmt: skip
                points = [("all atoms", spec, ()), ("one bead per residue", spec, ("--coarse",))]
            else:
                points = [(value, spec, ()) for value, spec in specs[axis]]
            for value, spec, extra in points:
                point = measure_point(Path(tmp), axis, value, spec, args, extra)
                print(json.dumps(point), flush=True)
                results[axis].append(point)
    if args.reuse_json:
        earlier = json.loads(args.reuse_json.read_text())
        results = {**{a: earlier[a] for a in AXIS_TEXT_ORDER if a in earlier}, **results}
    if args.save_json:
        args.save_json.write_text(json.dumps(results, indent=1))

    load = os.getloadavg()
    lines = [
        "## How cost grows (`benchmarks/cost_growth.py`)",
        "",
        f"Run {started:%Y-%m-%d %H:%M}: `cryomotion train {args.system}` "
        f"{' '.join(args.train_args)}, one epoch per point, each in a fresh process "
        f"({torch.get_num_threads()} threads, CPU; load average {load[0]:.1f} / {load[1]:.1f} "
        "at the end). *Train ms/particle*: the optimisation loop; *epoch*: loop + inference "
        "of the 10 % held out; *set-up*: the rest of the process's wall time (reading, model, "
        "normal modes, final inference, writing); *peak MiB*: the training process's peak "
        "resident memory. Exponents: least-squares slope of log y on log x (last step: the "
        "two largest points).",
        "",
    ]
    for axis in [a for a in AXIS_TEXT_ORDER if a in results]:
        rows = complex_table(results[axis]) if axis == "complex" else table(axis, results[axis])
        lines += rows + [""]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        print(write_section("cost_growth", markdown))


if __name__ == "__main__":
    main()

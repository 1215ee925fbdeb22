"""Training throughput on the CPU with two torchrun processes against one process.

Simulates AdK particles at 64 px (1.5 Å/px, heavy atoms, SNR 0.1), then trains each
system (nma: 16 modes; segments: default settings) for one epoch by the ``cryomotion
train`` command, in two ways on the same cores: one process with two threads
(``CRYOMOTION_THREADS=2``) and ``torchrun --nproc-per-node 2`` with one thread each (gloo,
``--device cpu``). Both use group normalisation, so both train the same model on the same
global batches (batch 256; torchrun: 128 per process). The two ways alternate, ``--repeats``
times, so a change of the machine's load falls on both alike. Reported per run: the
training loop's particles/s and the epoch's (including the 10 % test particles' inference)
from the run's ``metrics.csv``, and the whole command's wall and CPU seconds (start-up,
imports and the final inference of every particle included). Results go to the
``ddp_throughput`` section of docs/performance.md.

Usage::

    python benchmarks/ddp_throughput.py                     # 3000 particles, nma and segments
    python benchmarks/ddp_throughput.py --particles 1000 --systems nma --no-write
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from report import write_section

# train_throughput sets a passive OpenMP wait policy when imported; the trainings here
# run with the user's own (cryomotion's default leaves it alone)
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")
from train_throughput import cpu_name  # noqa: E402

WAYS = {
    "1 process × 2 threads": (1, 2),
    "2 processes × 1 thread": (2, 1),
}
SYSTEM_FLAGS = {"nma": ["--modes", "16"], "segments": []}


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_once(data: dict, run: Path, system: str, processes: int, threads: int) -> dict:
    """One epoch of ``system`` by ``processes`` processes of ``threads`` threads each."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     "--nproc-per-node", str(processes)]  # fmt: skip
    command = [
        *launcher, "-m", "cryomotion.cli.main", "train", system, str(data["star"]),
        str(data["reference"]), "-o", str(run), "--epochs", "1", "--device", "cpu",
        "--workers", "0", "--norm", "group", "--no-progress", *SYSTEM_FLAGS[system],
    ]  # fmt: skip
    env = dict(os.environ, CRYOMOTION_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    env.pop("OMP_WAIT_POLICY")
    if WAIT_POLICY is not None:
        env["OMP_WAIT_POLICY"] = WAIT_POLICY
    cpu, start = children_cpu_seconds(), time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    with (run / "metrics.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    with np.load(run / "latents.npz") as latents:
        n_particles = len(latents["particle_index"])
        n_train = int((~latents["is_test"]).sum())
    return {
        "train_rate": float(row["particles_per_s"]),
        "epoch_rate": n_train / float(row["epoch_seconds"]),
        "wall": wall,
        "cpu": cpu,
        "n_particles": n_particles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=3000)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEM_FLAGS), choices=SYSTEM_FLAGS)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way, alternated")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    args = parser.parse_args()

    loads = [os.getloadavg()]
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference, frames = adk_morph(50)
        simulation = SimulationConfig(
            n_particles=args.particles, box=64, pixel_size=1.5, snr=0.1, seed=0,
            distribution="uniform",
        )  # fmt: skip
        data = simulate_dataset(reference, frames, simulation, root / "data", progress=False)
        for system in args.systems:
            for repeat in range(args.repeats):
                for way, (processes, threads) in WAYS.items():
                    run = root / f"{system}_{processes}x{threads}_{repeat}"
                    result = train_once(data, run, system, processes, threads)
                    results.setdefault((system, way), []).append(result)
                    loads.append(os.getloadavg())
                    print(system, way, result, f"load {loads[-1][0]:.1f}", flush=True)

    load_1min = [load[0] for load in loads]
    lines = [
        "## Two processes on the CPU (`benchmarks/ddp_throughput.py`)",
        "",
        f"Device: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}; run "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; 1-min load average "
        f"{min(load_1min):.1f}–{max(load_1min):.1f} during the runs (the machine is shared "
        "with other jobs, so rates are our share of it; the two ways alternate so that load "
        "falls on both).",
        "",
        f"Set-up: AdK, {reference.n_atoms} heavy atoms, 64 px at 1.5 Å/px, {args.particles} "
        "simulated particles (SNR 0.1), 10 % held out and inferred after the epoch; nma: 16 "
        "normal modes, segments: default settings; one epoch of `cryomotion train` with "
        "batch 256, group normalisation, `--device cpu`; one process with 2 threads against "
        "`torchrun --nproc-per-node 2` (gloo) with 1 thread each. *Train* = particles/s in "
        "the optimisation loop; *epoch* = training particles / (loop + test inference) time; "
        "*command* = the whole command's wall and CPU seconds (start-up and the final "
        f"inference of all particles included). Runs of each way: {args.repeats}, in order.",
        "",
        "| system | processes × threads | train particles/s | epoch particles/s | "
        "command wall s | command CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for (system, way), runs in results.items():
        cells = [
            ", ".join(f"{r[key]:.0f}" for r in runs)
            for key in ("train_rate", "epoch_rate", "wall", "cpu")
        ]
        lines.append(f"| {system} | {way} | " + " | ".join(cells) + " |")
    summary = []
    for system in args.systems:
        one = np.median([r["epoch_rate"] for r in results[(system, "1 process × 2 threads")]])
        two = np.median([r["epoch_rate"] for r in results[(system, "2 processes × 1 thread")]])
        summary.append(f"{system} {two / one:.2f}×")
    lines += [
        "",
        "Two processes against one (median epoch particles/s): " + "; ".join(summary) + ". "
        "Under load a process's parallel regions wait for whichever of its threads shares a "
        "core with another job (`train/threads.py`, section shared_machine), which one-thread "
        "processes never do, so the ratio here measures the load as much as the two ways. "
        "Not measured on an idle machine; for scale, one process with 2 threads at load ≤ 1 "
        "trains at 200–300 particles/s (section train_throughput, batch norm).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        print(write_section("ddp_throughput", markdown))


if __name__ == "__main__":
    main()

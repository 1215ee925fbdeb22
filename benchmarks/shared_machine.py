"""Training on a shared machine: the slowdown when another process keeps one core busy.

On a 2-core machine one other CPU-bound process slowed training ~20× (issue 16): PyTorch's
OpenMP threads, one per core, wait for each other at every parallel region, and one of
them shares its core with the other process. The ``cryomotion`` command now starts with as
many threads as there are free cores (``train.threads``). This benchmark trains the same
nma run (2 epochs; the second epoch's training rate is reported) four ways, each in its own
process:

- ``before``: ``cli.main.main`` called directly, PyTorch's defaults (one thread per core),
  as every run was before;
- ``after``: the ``cryomotion`` command as users run it;

each alone and beside one busy process (a Python loop), and writes the rates and slowdowns
to the ``shared_machine`` section of docs/performance.md. Run it on an otherwise quiet
machine.

Usage::

    python benchmarks/shared_machine.py --workdir /tmp/shared_machine
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from report import write_section

BEFORE = "import sys; from cryomotion.cli.main import main; sys.exit(main(sys.argv[1:]))"
AFTER = "import sys; from cryomotion.cli.main import console; sys.exit(console())"


def train(data: Path, run_dir: Path, launcher: str, args) -> float:
    """Train in a fresh process; returns the last epoch's training rate (particles/s)."""
    command = [sys.executable, "-c", launcher, "train", "nma", str(data / "particles.star"),
               str(data / "reference.pdb"), "-o", str(run_dir), "--epochs", str(args.epochs),
               "--box", str(args.training_box), "--batch-size", str(args.batch_size),
               "--no-progress"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                          "CRYOMOTION_THREADS")}  # fmt: skip
    subprocess.run(command, check=True, env=env, capture_output=True)
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["particles_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("shared_machine_work"))
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--training-box", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    data = args.workdir / "data"
    if not (data / "ground_truth.npz").is_file():
        reference, frames = adk_morph(20)
        config = SimulationConfig(n_particles=args.particles, box=64, pixel_size=1.5, snr=0.1)
        simulate_dataset(reference, frames, config, data, progress=False)
    rates = {}
    for name, launcher in (("before", BEFORE), ("after", AFTER)):
        for load in ("alone", "one core busy"):
            run_dir = args.workdir / f"{name}_{load.replace(' ', '_')}_{time.time_ns()}"
            busy = None
            if load != "alone":
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(1.0)
            try:
                rates[name, load] = train(data, run_dir, launcher, args)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            print(name, load, f"{rates[name, load]:.0f} particles/s", flush=True)
    lines = [
        "## shared_machine: training beside another busy process (`benchmarks/shared_machine.py`)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores: nma, "
        f"{args.particles} AdK particles, {args.training_box}-px training box, batch "
        f"{args.batch_size}, rate of epoch {args.epochs} (particles/s); each run a fresh "
        "process; 'one core busy': a Python busy loop beside it.",
        "",
        "| launch | alone | one core busy | slowdown |",
        "|---|---:|---:|---:|",
    ]
    for name, text in (("before", "PyTorch defaults (before)"),
                       ("after", "`cryomotion` command (threads = free cores)")):  # fmt: skip
        alone, busy = rates[name, "alone"], rates[name, "one core busy"]
        lines.append(f"| {text} | {alone:.0f} | {busy:.0f} | {alone / busy:.1f}× |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(write_section("shared_machine", text))


if __name__ == "__main__":
    main()

"""Training throughput of every system on this device at 128 and 256 px, with peak memory.

For each registered system (or ``--systems``) and box, simulates AdK particles (1.5 Å/px at
128 px, 0.75 Å/px at 256 px: the same molecule, finer sampling), trains the system's
default configuration through ``train_run`` (the code path of ``cryomotion train``) for
``--epochs`` epochs and reports the last epoch's training rate (images/s) and the peak
memory: on CUDA the peak allocated by PyTorch (``torch.cuda.max_memory_allocated``), on
the CPU the process's peak resident memory. Written for one GPU in under 5 minutes (the
default sizes); on a machine without CUDA it runs on the CPU with fewer particles, says so,
and does not write docs/ unless ``--write``. Results go to the ``gpu`` section of
docs/performance.md. The goal (issue 16): > 5× cryoDRGN's published ~140 images/s per
V100 at 128 px.

Usage::

    python benchmarks/gpu.py                                   # CUDA if present
    python benchmarks/gpu.py --systems nma --boxes 128 --particles 256 --epochs 1   # quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import datetime
import resource
import tempfile
import time
from pathlib import Path

import torch

from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.systems.registry import SYSTEMS
from cryomotion.train.config import RunConfig, with_system_defaults
from cryomotion.train.run import train_run
from report import write_section

CRYODRGN_V100_128PX = 140.0  # images/s, cryoDRGN's published training rate per V100


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(system: str, data: dict, run_dir: Path, device: torch.device, args) -> dict:
    config = with_system_defaults(RunConfig(system=system, reference=str(data["reference"])))
    config.data.particles = str(data["star"])
    config.training.epochs = args.epochs
    config.training.batch_size = args.batch_size
    config.training.device = str(device)
    config.data.test_fraction = 0.05
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train_run(config, run_dir, progress=False, command_line="benchmarks/gpu.py")
    wall = time.perf_counter() - start
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {
        "images_per_s": float(rows[-1]["particles_per_s"]),
        "peak_mib": peak_memory_mib(device),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--boxes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--particles", type=int, default=None, help="default 2048 (CUDA), 128")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (CUDA), 32")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help="write docs/ even on the CPU")
    args = parser.parse_args()
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    args.particles = args.particles or (2048 if device.type == "cuda" else 128)
    args.batch_size = args.batch_size or (128 if device.type == "cuda" else 32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if device.type != "cuda":
        print("no CUDA device: running on the CPU with few particles (not the GPU numbers)")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="cryomotion_gpu_"))
    reference, frames = adk_morph(20)
    results = {}
    for box in args.boxes:
        pixel_size = 1.5 * 128 / box
        data = simulate_dataset(
            reference, frames,
            SimulationConfig(n_particles=args.particles, box=box, pixel_size=pixel_size, snr=0.1),
            root / f"data_{box}", progress=False,
        )  # fmt: skip
        for system in args.systems:
            result = measure(system, data, root / f"run_{system}_{box}", device, args)
            results[system, box] = result
            print(
                f"{system:>11} {box} px: {result['images_per_s']:.0f} images/s, peak "
                f"{result['peak_mib']:.0f} MiB, {result['wall_s']:.0f} s",
                flush=True,
            )
    lines = [
        "## gpu: every system's training rate on one device (`benchmarks/gpu.py`)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {name}: {args.particles} AdK "
        f"particles, batch {args.batch_size}, rate of epoch {args.epochs}, each system's "
        "defaults. Peak memory: PyTorch's peak allocation on CUDA, the process's peak "
        f"resident memory on the CPU. Goal at 128 px: > {5 * CRYODRGN_V100_128PX:.0f} images/s "
        f"(5× cryoDRGN's ~{CRYODRGN_V100_128PX:.0f} per V100).",
        "",
        "| system | "
        + " | ".join(f"{box} px images/s | {box} px peak MiB" for box in args.boxes)
        + " |",
        "|---|" + "---:|---:|" * len(args.boxes),
    ]
    for system in args.systems:
        cells = []
        for box in args.boxes:
            r = results[system, box]
            cells += [f"{r['images_per_s']:.0f}", f"{r['peak_mib']:.0f}"]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if device.type == "cuda" or args.write:
        print(write_section("gpu", text))


if __name__ == "__main__":
    main()

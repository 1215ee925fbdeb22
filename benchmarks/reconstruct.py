"""Back-projection throughput and resolution of `cryomotion reconstruct` on this machine.

Measures images/s of the Fourier insertion (FFT, CTF, phase, trilinear insertion into a
2×-padded grid, two half sets) at 64 and 128 px on the CPU (and CUDA when present), and the
half-map / true-map resolution of a simulated rigid AdK dataset at SNR 0.1. Appends the
table to docs/performance.md (section "## Reconstruction"). Quick: about a minute.

    python benchmarks/reconstruct.py [--no-write] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from cryomotion.analysis.maps import atomic_potential_map
from cryomotion.analysis.metrics import fourier_shell_correlation, resolution_at
from cryomotion.analysis.reconstruction import reconstruct
from cryomotion.data.readers import read_particles
from cryomotion.imaging.backprojection import FourierInserter
from cryomotion.simulate.conformations import uniform_rotations
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.structure.io import read_model

DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def insertion_rate(box: int, n: int, device: str, batch: int = 64) -> tuple[float, float]:
    """(images/s, grid MB) of inserting n random images of ``box`` px into two half sets."""
    rng = np.random.default_rng(0)
    rotations = torch.as_tensor(uniform_rotations(n, rng), dtype=torch.float32)
    ctf = torch.zeros(n, 8)
    ctf[:, 0] = ctf[:, 1] = 15000.0
    ctf[:, 3], ctf[:, 4], ctf[:, 5] = 300.0, 2.7, 0.1
    shifts = torch.randn(n, 2)
    images = torch.randn(batch, box, box)
    inserter = FourierInserter(box, 1.0, n_sets=2, device=device)
    sets = torch.arange(batch) % 2
    inserter.insert(images, rotations[:batch], shifts[:batch], ctf[:batch], sets)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in range(0, n, batch):
        part = slice(b, b + batch)
        inserter.insert(images[: len(rotations[part])], rotations[part], shifts[part], ctf[part],
                        sets[: len(rotations[part])])  # fmt: skip
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return n / seconds, inserter.grid.numel() * inserter.grid.element_size() / 2**20


def resolution_run(n: int, box: int = 32, pixel: float = 3.0) -> dict:
    model = read_model(str(files("cryomotion") / "resources" / "adk_open.pdb"))
    with tempfile.TemporaryDirectory() as folder:
        config = SimulationConfig(n_particles=n, box=box, pixel_size=pixel, snr=0.1)
        paths = simulate_dataset(model, model.coords[None], config, folder, progress=False)
        start = time.perf_counter()
        result = reconstruct(read_particles(paths["star"]), halves=True, progress=False)
        seconds = time.perf_counter() - start
        reference = read_model(paths["reference"])
    truth = atomic_potential_map(reference.coords, reference.elements, box, pixel)
    frequency, fsc_truth = fourier_shell_correlation(result.volume, truth, pixel)
    return {
        "n": n, "box": box, "pixel": pixel, "seconds": seconds,
        "half_0143": result.resolution(0.143), "half_05": result.resolution(0.5),
        "truth_05": resolution_at(frequency, fsc_truth, 0.5),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for box, n in ((64, 512), (128, 256)):
            rate, megabytes = insertion_rate(box, n, device)
            rows.append((device, box, rate, megabytes))
            print(f"{device} {box} px: {rate:.0f} images/s, grids {megabytes:.0f} MB")
    quality = resolution_run(2000)
    print(quality)
    load = os.getloadavg()[0]
    half = f"{quality['half_0143']:.2f} Å"
    if quality["half_0143"] <= 2 * quality["pixel"] + 1e-9:
        half += " (it never falls below 0.143: Nyquist)"
    lines = [
        "",
        "## Reconstruction (`benchmarks/reconstruct.py`)",
        "",
        f"Fourier insertion (`imaging/backprojection.py`: rfft, CTF, phase, trilinear insertion "
        f"into a 2×-padded grid, two half sets), float32, batches of 64, {args.threads} CPU "
        f"thread(s) on a shared machine (load average {load:.1f} during the run, so these are "
        "lower bounds). Grids: two half sets × (2D)³ × 3 float32.",
        "",
        "| device | box (px) | images/s | grid memory (MB) |",
        "|---|---|---|---|",
        *[f"| {d} | {b} | {r:.0f} | {m:.0f} |" for d, b, r, m in rows],
        "",
        f"Resolution: {quality['n']} rigid AdK particles simulated at SNR 0.1 "
        f"({quality['box']} px, {quality['pixel']} Å/px, Nyquist {2 * quality['pixel']:.1f} Å), "
        f"reconstructed with half sets in {quality['seconds']:.1f} s: half-map FSC 0.143 at "
        f"{half} (0.5 at {quality['half_05']:.2f} Å); FSC 0.5 to the true "
        f"map at {quality['truth_05']:.2f} Å.",
        "",
    ]
    if not args.no_write:
        with open(DOCS, "a") as handle:
            handle.write("\n".join(lines))
        print(f"appended to {DOCS}")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()

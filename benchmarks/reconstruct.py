"""Back-projection throughput, memory and resolution of `cryomotion reconstruct`.

1. Throughput: images/s of the Fourier insertion (rfft, CTF, phase, trilinear insertion
   into a 2×-padded grid, two half sets) at 64, 128 and 256 px on the CPU (and CUDA when
   present), each size in a fresh process so that its peak memory can be read; at 64 and
   128 px also the time and peak memory of the inversion (density compensation, Wiener
   term from the half sets, inverse FFT, gridding correction).
2. Resolution: rigid AdK (the bundled open structure) and a flexible AdK (a uniform morph
   of the bundled open → closed structures, the closed one superposed onto the open one
   as `cryomotion simulate --endpoints` does) simulated at SNR 0.1, reconstructed with
   half sets: half-map FSC 0.143 and FSC to the true map, so the blur from flexibility is
   measured. For the flexible set the true map is the population-weighted average of the
   frames' maps (what a perfect rigid reconstruction converges to); the FSC to the map of
   a single conformation (the middle frame of the morph) is reported as well.
3. With ``--cryodrgn DIR`` (a folder that holds the ``cryodrgn`` package, e.g.
   ``pip install --no-deps --target DIR cryodrgn igraph``; it is imported in a separate
   process, never by cryomotion): the same numbers for cryoDRGN's ``backproject_voxel``
   on the same images, poses and CTFs.

Writes docs/performance.md (section "reconstruction") and docs/results.md (section
"reconstruct"). About 3-4 minutes on 2 shared CPU cores with the defaults.

    python benchmarks/reconstruct.py [--no-write] [--threads N] [--particles N]
                                     [--cryodrgn DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.resources import files
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryomotion.analysis.maps import atomic_potential_map
from cryomotion.analysis.metrics import fourier_shell_correlation, resolution_at
from cryomotion.analysis.reconstruction import reconstruct
from cryomotion.data.poses import shift_to_cryodrgn_trans
from cryomotion.data.readers import read_particles
from cryomotion.simulate.conformations import morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.structure.io import read_model
from cryomotion.structure.superpose import superpose
from report import write_section

SIZES = ((64, 512), (128, 256), (256, 64))  # box, images (256 px: few, the grid is 3 GB)
RESOURCES = files("cryomotion") / "resources"


# ---------------------------------------------------------------------------- throughput


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _throughput(box: int, n: int, device: str, threads: int, finish: bool, batch: int = 64):
    """In a fresh process: (images/s, grid MB, insertion peak MB, inversion s, peak MB)."""
    from cryomotion.analysis.reconstruction import _finish
    from cryomotion.imaging.backprojection import FourierInserter
    from cryomotion.simulate.conformations import uniform_rotations

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rotations = torch.as_tensor(uniform_rotations(n, rng), dtype=torch.float32)
    ctf = torch.zeros(n, 8)
    ctf[:, 0] = ctf[:, 1] = 15000.0
    ctf[:, 3], ctf[:, 4], ctf[:, 5] = 300.0, 2.7, 0.1
    shifts = torch.randn(n, 2)
    images = torch.randn(batch, box, box)
    sets = torch.arange(batch) % 2
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    inserter = FourierInserter(box, 1.0, n_sets=2, device=device)
    inserter.grid.zero_()  # touch every page now, not during the timed insertions
    inserter.insert(images[:4], rotations[:4], shifts[:4], ctf[:4], sets[:4])  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in range(0, n, batch):
        m = len(rotations[b : b + batch])
        inserter.insert(images[:m], rotations[b : b + m], shifts[b : b + m], ctf[b : b + m],
                        sets[:m])  # fmt: skip
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    grid_mb = inserter.grid.numel() * inserter.grid.element_size() / 2**20

    def peak() -> float:
        if device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return _peak_rss_mb() - base

    insert_peak = peak()
    invert_s = total_peak = float("nan")
    if finish:
        start = time.perf_counter()
        _finish(inserter, True, 1e-3, None)
        if device == "cuda":
            torch.cuda.synchronize()
        invert_s = time.perf_counter() - start
        total_peak = peak()
    return n / seconds, grid_mb, insert_peak, invert_s, total_peak


def throughput_rows(threads: int) -> list[tuple]:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    context = multiprocessing.get_context("spawn")
    rows = []
    for device in devices:
        for box, n in SIZES:
            n = n * 8 if device == "cuda" else n
            with context.Pool(1) as pool:
                values = pool.apply(_throughput, (box, n, device, threads, box <= 128))
            rows.append((device, box, n, *values))
            rate, grid, insert_peak, invert_s, total_peak = values
            print(f"{device} {box} px, {n} images: {rate:.0f} images/s, grids {grid:.0f} MB, "
                  f"peak {insert_peak:.0f} MB; inversion {invert_s:.2f} s, "
                  f"peak {total_peak:.0f} MB", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------------- resolution


def simulate(folder: Path, flexible: bool, n: int, box: int, pixel: float, snr: float):
    """A rigid (open AdK) or flexible (20-frame open → closed morph) dataset."""
    reference = read_model(str(RESOURCES / "adk_open.pdb"))
    if flexible:
        closed = read_model(str(RESOURCES / "adk_closed.pdb"))
        frames = morph(reference.coords, superpose(closed.coords, reference.coords), 20)
    else:
        frames = reference.coords[None]
    config = SimulationConfig(n_particles=n, box=box, pixel_size=pixel, snr=snr, seed=1)
    paths = simulate_dataset(reference, frames, config, folder, progress=False)
    with np.load(paths["ground_truth"]) as truth:
        placed, frame_index = truth["frame_coords"], truth["frame_index"]
    counts = np.bincount(frame_index, minlength=len(placed))
    maps = [
        atomic_potential_map(coords, reference.elements, box, pixel) if c else None
        for coords, c in zip(placed, counts)
    ]
    average = sum(c * m for c, m in zip(counts, maps) if c) / counts.sum()
    middle = atomic_potential_map(placed[len(placed) // 2], reference.elements, box, pixel)
    return paths, average, middle


def _resolutions(volume, half_a, half_b, truth, single, pixel) -> dict:
    frequency, fsc_half = fourier_shell_correlation(half_a, half_b, pixel)
    _, fsc_truth = fourier_shell_correlation(volume, truth, pixel)
    _, fsc_single = fourier_shell_correlation(volume, single, pixel)
    return {
        "half_0143": resolution_at(frequency, fsc_half, 0.143),
        "half_05": resolution_at(frequency, fsc_half, 0.5),
        "truth_05": resolution_at(frequency, fsc_truth, 0.5),
        "truth_0143": resolution_at(frequency, fsc_truth, 0.143),
        "single_05": resolution_at(frequency, fsc_single, 0.5),
    }


def ours(paths, truth, single, pixel, threads) -> dict:
    torch.set_num_threads(threads)
    table = read_particles(paths["star"])
    start = time.perf_counter()
    result = reconstruct(table, halves=True, progress=False, device="cpu")
    seconds = time.perf_counter() - start
    numbers = _resolutions(result.volume, *result.half_maps, truth, single, pixel)
    return {"seconds": seconds, **numbers}


_DRGN_SCRIPT = textwrap.dedent(
    """
    import argparse, sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from cryodrgn.commands import backproject_voxel as b
    parser = argparse.ArgumentParser()
    b.add_args(parser)
    b.main(parser.parse_args(sys.argv[2:]))
    """
)


def cryodrgn_version(path: str | None) -> str | None:
    if not path:
        return None
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", "import cryodrgn; print(cryodrgn.__version__)"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 else None


def _variants(volume: np.ndarray):
    """The map and its axis reversals/transposes, ± (conventions differ between programs)."""
    for name, v in (("as is", volume), ("x↔z", volume.transpose(2, 1, 0))):
        for flip in ((), (0,), (1,), (2,)):
            flipped = np.flip(v, flip) if flip else v
            for sign in (1, -1):
                label = name + (f", flip axis {flip[0]}" if flip else "") + (
                    ", negated" if sign < 0 else "")  # fmt: skip
                yield label, sign * np.ascontiguousarray(flipped)


def cryodrgn(paths, truth, single, pixel, threads, path: str, folder: Path) -> dict:
    """cryoDRGN backproject_voxel on the same stack, poses and CTFs."""
    table = read_particles(paths["star"])
    trans = shift_to_cryodrgn_trans(table.shifts, table.box_size, table.pixel_size)
    poses, ctf = folder / "poses.pkl", folder / "ctf.pkl"
    with open(poses, "wb") as handle:
        pickle.dump((table.rotations.astype(np.float32), trans.astype(np.float32)), handle)
    ctf_rows = np.column_stack(
        [np.full(len(table), table.box_size), table.pixel_size, table.ctf[:, :7]]
    ).astype(np.float32)
    with open(ctf, "wb") as handle:
        pickle.dump(ctf_rows, handle)
    out = folder / "drgn"
    env = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _DRGN_SCRIPT, str(threads), str(paths["stack"]), "--poses",
         str(poses), "--ctf", str(ctf), "-o", str(out), "--uninvert-data"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cryoDRGN backproject_voxel failed:\n{done.stderr[-2000:]}")

    def load(name):
        with mrcfile.open(out / name, permissive=True) as mrc:
            return np.asarray(mrc.data, dtype=np.float32)

    volume, half_a, half_b = load("backproject.mrc"), load("half_map_a.mrc"), load(
        "half_map_b.mrc")  # fmt: skip
    # The orientation that matches the true map best at low resolution (shells 1..D/8).
    shells = slice(1, volume.shape[0] // 8 + 1)
    label, _ = max(
        _variants(volume),
        key=lambda item: fourier_shell_correlation(item[1], truth, pixel)[1][shells].mean(),
    )
    oriented = dict(_variants(volume))[label]
    halves = [dict(_variants(h))[label] for h in (half_a, half_b)]
    numbers = _resolutions(oriented, *halves, truth, single, pixel)
    return {"seconds": seconds, "orientation": label, **numbers}


# ---------------------------------------------------------------------------- report


def _fmt(value: float, nyquist: float) -> str:
    return f"{value:.2f}" + ("*" if value <= nyquist + 1e-6 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--particles", type=int, default=3000, help="per resolution dataset")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=1.5)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--cryodrgn", help="folder holding the cryodrgn package (PYTHONPATH)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows = [] if args.skip_throughput else throughput_rows(args.threads)
    drgn = cryodrgn_version(args.cryodrgn)
    if args.cryodrgn and drgn is None:
        print(f"cryodrgn not importable from {args.cryodrgn}: not compared")
    box, pixel, n = args.box, args.pixel_size, args.particles
    nyquist = 2 * pixel
    quality = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("rigid", "flexible"):
            folder = Path(tmp) / kind
            start = time.perf_counter()
            paths, truth, single = simulate(folder, kind == "flexible", n, box, pixel, args.snr)
            print(f"{kind}: simulated {n} particles in {time.perf_counter() - start:.1f} s")
            quality[kind, "cryomotion"] = ours(paths, truth, single, pixel, args.threads)
            print(kind, "cryomotion", quality[kind, "cryomotion"], flush=True)
            if drgn:
                quality[kind, "cryoDRGN"] = cryodrgn(
                    paths, truth, single, pixel, args.threads, args.cryodrgn, folder
                )
                print(kind, "cryoDRGN", quality[kind, "cryoDRGN"], flush=True)
    load = os.getloadavg()
    stamp = time.strftime("%Y-%m-%d %H:%M")
    cpu = platform.processor() or platform.machine()
    device_line = (
        f"Device: {cpu}, {os.cpu_count()} cores, {args.threads} torch thread(s); torch "
        f"{torch.__version__}; run {stamp}, load average {load[0]:.1f} / {load[1]:.1f} "
        f"(1 / 5 min; the machine is shared, so rates are lower bounds). Whole benchmark: "
        f"{(time.perf_counter() - began) / 60:.1f} min."
    )
    performance = [
        "## Reconstruction (`benchmarks/reconstruct.py`)",
        "",
        device_line,
        "",
        "Fourier insertion (`imaging/backprojection.py`: rfft, CTF, phase, trilinear insertion "
        "into a 2×-padded grid, two half sets), float32, batches of 64 random images with "
        "random poses, shifts and CTFs; each size in a fresh process. *Grids*: two half sets × "
        "(2D)³ × 3 float32. *Peak*: the process's peak resident memory above what it held "
        "before the grids were allocated (CUDA: peak allocated device memory). *Inversion*: "
        "density compensation (10 Pipe–Menon iterations), half-set SSNR Wiener term, inverse "
        "FFTs of the two half maps and the full map, gridding correction; not run at 256 px "
        "on this shared machine (its 512³ complex grids need several GB more).",
        "",
        "| device | box (px) | images | images/s | grids (MB) | peak, insertion (MB) "
        "| inversion (s) | peak, with inversion (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for device, b, count, rate, grid, insert_peak, invert_s, total_peak in rows:
        inv = "—" if np.isnan(invert_s) else f"{invert_s:.1f}"
        tot = "—" if np.isnan(total_peak) else f"{total_peak:.0f}"
        performance.append(
            f"| {device} | {b} | {count} | {rate:.0f} | {grid:.0f} | {insert_peak:.0f} | {inv} "
            f"| {tot} |"
        )
    for kind in ("rigid", "flexible"):
        q = quality[kind, "cryomotion"]
        performance.append("")
        performance.append(
            f"End to end (`reconstruct`, reading the stack, two half sets): {n} {kind} "
            f"particles at {box} px in {q['seconds']:.1f} s ({n / q['seconds']:.0f} images/s)."
        )
    if drgn:
        for kind in ("rigid", "flexible"):
            q = quality[kind, "cryoDRGN"]
            performance.append(
                f"cryoDRGN {drgn} `backproject_voxel` on the same {kind} particles "
                f"(no padding, its default batch of 1000, CTF multiplication, half maps): "
                f"{q['seconds']:.1f} s including its start-up ({n / q['seconds']:.0f} images/s)."
            )
    else:
        performance.append(
            "cryoDRGN's `backproject_voxel` was not run side by side here (not installed)."
        )

    header = (
        "| dataset | program | half-map FSC 0.143 (Å) | half-map FSC 0.5 (Å) | FSC 0.5 to "
        "the true map (Å) | FSC 0.143 to the true map (Å) | FSC 0.5 to one conformation (Å) |"
    )
    results = [
        "## reconstruct: rigid vs flexible AdK (`benchmarks/reconstruct.py`)",
        "",
        f"{n} particles per dataset, {box} px at {pixel} Å/px (Nyquist {nyquist:.1f} Å), SNR "
        f"{args.snr:g}, uniform poses, log-normal defocus (1 ± 0.3 µm), Gaussian shifts; poses "
        "and CTFs are the true ones. *Rigid*: the bundled open AdK. *Flexible*: a 20-frame "
        "linear morph of the bundled open → closed AdK (closed superposed onto open, as "
        "`cryomotion simulate --endpoints`), frames drawn uniformly (LID and NMP domains move "
        "by up to ~20 Å). Reconstructed with `cryomotion reconstruct --halves` (random half "
        "sets, RELION-style SSNR Wiener term). *True map*: the map of the model (rigid) or "
        "the population-weighted average of the frames' maps (flexible: what a perfect rigid "
        "reconstruction tends to); *one conformation*: the map of the morph's middle frame "
        "(rigid: the same model). * = the curve never falls below the threshold (Nyquist).",
        "",
        header,
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (kind, program), q in quality.items():
        results.append(
            f"| {kind} | {program} | {_fmt(q['half_0143'], nyquist)} | "
            f"{_fmt(q['half_05'], nyquist)} | {_fmt(q['truth_05'], nyquist)} | "
            f"{_fmt(q['truth_0143'], nyquist)} | {_fmt(q['single_05'], nyquist)} |"
        )
    rigid, flexible = quality["rigid", "cryomotion"], quality["flexible", "cryomotion"]
    results += [
        "",
        f"Blur from flexibility (cryomotion): the half-map FSC 0.5 goes from "
        f"{rigid['half_05']:.2f} Å (rigid) to {flexible['half_05']:.2f} Å (flexible), the FSC "
        f"0.5 to a single conformation from {rigid['single_05']:.2f} Å to "
        f"{flexible['single_05']:.2f} Å, while the half-map FSC 0.143 ({rigid['half_0143']:.2f} → "
        f"{flexible['half_0143']:.2f} Å) stays near Nyquist at this particle count: a rigid "
        "reconstruction of a flexible molecule is a consistent (the half maps agree) but "
        "blurred average, and the FSC to one conformation shows what is lost.",
    ]
    if drgn:
        labels = {q.get("orientation") for (_, p), q in quality.items() if p == "cryoDRGN"}
        results.append(
            f"cryoDRGN {drgn} `backproject_voxel` ran on the same stacks, poses (poses.pkl) "
            f"and CTFs (ctf.pkl), `--uninvert-data`, default regularisation; its maps were "
            f"compared with the truth {', '.join(sorted(labels))} (the orientation that "
            "matched the true map best), FSCs computed by cryomotion's "
            "`fourier_shell_correlation` for both programs. Half-map FSC 0.5, cryoDRGN vs "
            "cryomotion: "
            + ", ".join(
                f"{kind} {quality[kind, 'cryoDRGN']['half_05']:.2f} vs "
                f"{quality[kind, 'cryomotion']['half_05']:.2f} Å"
                for kind in ("rigid", "flexible")
            )
            + " (not investigated further; one difference: cryoDRGN's constant Wiener term, "
            "1 × the mean CTF² weight, is much stronger than cryomotion's SSNR term)."
        )
    else:
        results.append(
            "cryoDRGN's `backproject_voxel` was not run side by side (not installed here)."
        )
    results.append("")
    results.append(device_line)
    text_perf, text_results = "\n".join(performance), "\n".join(results)
    print(text_perf, "\n", text_results, sep="\n")
    if not args.no_write:
        if rows:
            print("wrote", write_section("reconstruction", text_perf, "performance.md"))
        print("wrote", write_section("reconstruct", text_results, "results.md"))


if __name__ == "__main__":
    main()

"""A million particles: bounded memory from the simulated stacks to one training epoch.

Three measurements, each in its own process (peak resident memory from ``os.wait4``):

(a) ``cryomotion simulate`` of ``--simulate`` AdK particles (2 frames of the open ->
    closed morph, 64 px, float16, several stacks): wall time, rate and peak RSS.
(b) A ``--particles`` dataset (default 10^6): when larger than (a), its stacks are
    written by repeating (a)'s images and metadata (rendering 10^6 images takes over an
    hour on two busy cores; the data path does not care what the pixels show); its
    writing (StackWriter + write_star) is timed with its peak RSS. Then one epoch of
    ``nma`` over all its particles in random order: the loader reads every batch of the
    epoch, and the first ``--train-batches`` batches also take an optimizer step (a full
    epoch of steps on 10^6 particles is hours on this CPU); peak RSS of the process.
(c) On the first ``--subset`` particles, the same epoch (every batch a training step,
    or ``--subset-batches``) from the stacks on disk vs from memory (``data.preload``),
    interleaved ``--repeats`` times; the ratio of the epoch times.

The training box is ``--train-box`` (Fourier-cropped from 64 px on the fly, on both
paths). Results go to the ``million_particles`` section of docs/performance.md.

Usage::

    python benchmarks/million_particles.py --particles 20000 --simulate 5000 --subset 5000
    python benchmarks/million_particles.py            # 10^6 particles, subset 10^5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from report import write_section

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "src" / "cryomotion" / "resources"
CLI = "import sys; from cryomotion.cli.main import main; sys.exit(main(sys.argv[1:]))"


def run_measured(command: list[str]) -> dict:
    """Run ``command``; wall seconds, CPU seconds, peak RSS (MiB) and its last stdout line
    parsed as JSON (or None)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{command[:4]} failed ({process.returncode}):\n{output[-2000:]}")
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "result": json.loads(lines[-1]) if lines else None,
    }


# -- child processes ------------------------------------------------------------------
def tile_dataset(source_star: str, folder: str, n: int, per_stack: int) -> None:
    """Write ``n`` particles into ``folder`` (float16 stacks of ``per_stack`` images and
    particles.star), repeating the images and metadata of ``source_star`` in order."""
    from dataclasses import replace

    from cryomotion.data.readers import read_particles
    from cryomotion.data.stack import StackReader, StackWriter
    from cryomotion.data.star import write_star
    from cryomotion.simulate.dataset import stack_names

    source = read_particles(source_star)
    n_source = len(source)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = stack_names(n, per_stack)
    per_stack = n if len(names) == 1 else per_stack
    reader = StackReader()
    start = time.perf_counter()
    chunk = 2048
    for k, name in enumerate(names):
        first, last = k * per_stack, min(n, (k + 1) * per_stack)
        with StackWriter(
            folder / name, last - first, source.box_size, source.single_pixel_size, "float16"
        ) as out:
            for begin in range(first, last, chunk):
                rows = np.arange(begin, min(last, begin + chunk)) % n_source
                images = np.empty((len(rows), source.box_size, source.box_size), np.float16)
                files = source.image_files[rows]
                for file in np.unique(files):
                    where = np.flatnonzero(files == file)
                    images[where] = reader.read_stored(file, source.image_indices[rows[where]])
                out.write(begin - first, images)
    stacks_s = time.perf_counter() - start
    rows = np.arange(n) % n_source
    particle_stack = np.arange(n) // per_stack
    paths = np.array([str((folder / name).resolve()) for name in names], dtype=object)
    table = replace(
        source.subset(rows),
        image_files=paths[particle_stack],
        image_indices=np.arange(n) - particle_stack * per_stack,
        star=None,
    )
    start = time.perf_counter()
    write_star(folder / "particles.star", table)
    star_s = time.perf_counter() - start
    print(json.dumps({"stacks_s": stacks_s, "star_s": star_s, "stacks": len(names)}))


def train_epoch(args: argparse.Namespace) -> None:
    """One epoch of nma on the star file's first ``args.subset`` particles (all if 0)."""
    import torch

    from cryomotion.data.dataset import ParticleDataset
    from cryomotion.structure.io import read_model
    from cryomotion.systems.registry import get_system
    from cryomotion.train.calibrate import calibrate_intensity
    from cryomotion.train.config import RunConfig, with_system_defaults
    from cryomotion.train.results import run_particles
    from cryomotion.train.run import build_model
    from cryomotion.train.run_dir import RunPaths
    from cryomotion.train.trainer import Trainer

    torch.set_num_threads(int(os.environ.get("CRYOMOTION_THREADS", "1")))
    start = time.perf_counter()
    config = with_system_defaults(RunConfig(system="nma", reference=args.reference))
    config.data.particles = args.star
    config.data.box = args.train_box
    config.data.preload = args.preload
    config.training.workers = 0
    config.training.device = "cpu"
    config.training.batch_size = args.batch_size
    table = run_particles(config)
    if args.subset:
        table = table.subset(np.arange(min(args.subset, len(table))))
    star_s = time.perf_counter() - start
    dataset = ParticleDataset(table, box=args.train_box, preload=args.preload)
    dataset_s = time.perf_counter() - start - star_s
    run = Path(tempfile.mkdtemp(prefix="run_", dir=args.work))
    shutil.copy(args.reference, run / "reference.pdb")
    prepared = Path(args.work) / "prepared"  # the normal modes, computed once
    prepared.mkdir(exist_ok=True)
    system = get_system(config.system)
    reference = read_model(args.reference)
    system.prepare(reference, config.model.latent_dim, config.deformation, prepared)
    for path in prepared.iterdir():
        shutil.copy(path, run / path.name)
    model = build_model(config, RunPaths(run), dataset, table.box_size, table.single_pixel_size)
    indices = np.arange(len(dataset))
    calibrate_intensity(model, dataset, indices)
    trainer = Trainer(model, dataset, indices, indices[:0], config.training, progress=False)
    batches = trainer.epoch_batches(0)
    steps = len(batches) if args.steps < 0 else min(args.steps, len(batches))
    loader = iter(trainer._loader(batches, seed=0))
    load_s = step_s = 0.0
    trainer.module.train()
    for k in range(len(batches)):
        mark = time.perf_counter()
        batch = next(loader)
        now = time.perf_counter()
        load_s += now - mark
        if k < steps:
            trainer.step(batch)
            step_s += time.perf_counter() - now
    shutil.rmtree(run)
    print(
        json.dumps(
            {
                "particles": len(dataset),
                "batches": len(batches),
                "steps": steps,
                "read_star_s": star_s,
                "dataset_s": dataset_s,
                "load_s": load_s,
                "step_s": step_s,
                "epoch_s": load_s + step_s,
            }
        )
    )


# -- the benchmark --------------------------------------------------------------------
def train_command(args, star: Path, subset: int, preload: bool, steps: int) -> list[str]:
    command = [
        sys.executable, __file__, "_train", "--star", str(star), "--reference",
        str(args.reference), "--train-box", str(args.train_box), "--batch-size",
        str(args.batch_size), "--subset", str(subset), "--steps", str(steps), "--work",
        str(args.work),
    ]  # fmt: skip
    return command + (["--preload"] if preload else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1_000_000)
    parser.add_argument("--simulate", type=int, default=20_000, help="particles rendered (a)")
    parser.add_argument("--images-per-stack", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=100_000, help="particles of (c)")
    parser.add_argument("--train-box", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-batches", type=int, default=20, help="steps taken in (b)")
    parser.add_argument("--subset-batches", type=int, default=-1, help="steps in (c); -1 all")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of (c) each way; 0: (a) and (b) only"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "million_work")
    parser.add_argument("--keep", action="store_true", help="keep the datasets in --work")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs")
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    simulated = args.work / "simulated"
    args.reference = simulated / "reference.pdb"
    load = open("/proc/loadavg").read().split()[:3]
    per_stack_a = min(args.images_per_stack, max(1, args.simulate // 4))

    # (a) simulation
    a = run_measured(
        [
            sys.executable, "-c", CLI, "simulate", "--endpoints",
            str(RESOURCES / "adk_open.pdb"), str(RESOURCES / "adk_closed.pdb"),
            "--frames", "2", "--particles", str(args.simulate), "--box", "64",
            "--pixel-size", "1.5", "--snr", "0.1", "--stack-dtype", "float16",
            "--images-per-stack", str(per_stack_a), "--no-progress", "--force",
            "-o", str(simulated),
        ]
    )  # fmt: skip
    print(f"(a) simulate {args.simulate}: {a['wall_s']:.0f} s, {a['peak_rss_mib']:.0f} MiB")

    # (b) the big dataset and one epoch over it
    if args.particles > args.simulate:
        big = args.work / "big"
        tile = run_measured(
            [
                sys.executable, __file__, "_tile", "--star", str(simulated / "particles.star"),
                "--out", str(big), "--particles", str(args.particles),
                "--images-per-stack", str(args.images_per_stack),
            ]
        )  # fmt: skip
        print(f"(b) wrote {args.particles}: {tile['wall_s']:.0f} s, {tile['peak_rss_mib']:.0f} MiB")
    else:
        big, tile = simulated, None
    disk_gib = sum(p.stat().st_size for p in big.glob("*.mrcs")) / 2**30
    b = run_measured(train_command(args, big / "particles.star", 0, False, args.train_batches))
    print(f"(b) epoch: {b['result']}, {b['peak_rss_mib']:.0f} MiB")

    # (c) stacks on disk vs in memory, interleaved
    runs = {"disk": [], "memory": []}
    for _ in range(args.repeats):
        for mode in ("disk", "memory"):
            command = train_command(
                args, big / "particles.star", args.subset, mode == "memory", args.subset_batches
            )
            runs[mode].append(run_measured(command))
            print(f"(c) {mode}: {runs[mode][-1]['result']}")
    load_after = open("/proc/loadavg").read().split()[:3]
    if not args.keep:
        shutil.rmtree(args.work)
    if not args.repeats:  # no (c): the section's tables need it; (a) and (b) are printed above
        print("(c) not run (--repeats 0): docs/ not written")
        return
    markdown = report(args, a, tile, b, runs, disk_gib, load, load_after)
    print(markdown)
    if not args.no_write:
        write_section("million_particles", markdown)


def report(args, a, tile, b, runs, disk_gib, load, load_after) -> str:
    def median(mode, key):
        return float(np.median([run["result"][key] for run in runs[mode]]))

    result = b["result"]
    rate = result["particles"] / result["load_s"]
    ratios = [d["result"]["epoch_s"] / m["result"]["epoch_s"] for d, m in zip(*runs.values())]
    load_ratio = median("disk", "load_s") / median("memory", "load_s")
    n_subset = runs["disk"][0]["result"]["particles"]
    subset_steps = runs["disk"][0]["result"]["steps"]
    subset_batches = runs["disk"][0]["result"]["batches"]
    lines = [
        "## A million particles: memory and the data path",
        "",
        f"`benchmarks/million_particles.py`, {datetime.date.today()}, CPU, one thread "
        f"(`CRYOMOTION_THREADS={os.environ.get('CRYOMOTION_THREADS', 'unset')}`), load "
        f"average {' '.join(load)} before and {' '.join(load_after)} after (a shared machine: "
        "the ratios below are measured back to back). AdK, 64 px at 1.5 Å/px, float16 "
        f"stacks of {args.images_per_stack:,} images, nma (16 modes, encoder width 0.25), "
        f"batch {args.batch_size}, training box {args.train_box} px (Fourier-cropped on the "
        "fly, on both paths of (c)), no DataLoader workers. Peak RSS is the process's "
        "`ru_maxrss` (`os.wait4`).",
        "",
        "| step | particles | wall (s) | rate (particles/s) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| (a) `cryomotion simulate` (2 frames, SNR 0.1) | {args.simulate:,} | "
        f"{a['wall_s']:.0f} | {args.simulate / a['wall_s']:.0f} | {a['peak_rss_mib']:.0f} |",
    ]
    if tile is not None:
        t = tile["result"]
        lines.append(
            f"| (b) write {t['stacks']} stacks + particles.star (images of (a) repeated; "
            f"star {t['star_s']:.0f} s) | {args.particles:,} | {tile['wall_s']:.0f} | "
            f"{args.particles / tile['wall_s']:.0f} | {tile['peak_rss_mib']:.0f} |"
        )
    lines += [
        f"| (b) one epoch, random order: read star {result['read_star_s']:.0f} s, loader over "
        f"all {result['batches']:,} batches {result['load_s']:.0f} s, "
        f"{result['steps']} training steps {result['step_s']:.0f} s | {result['particles']:,} | "
        f"{b['wall_s']:.0f} | {rate:.0f} (loader) | {b['peak_rss_mib']:.0f} |",
        "",
        f"The stacks of (b) take {disk_gib:.1f} GiB on disk; the machine has "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB of "
        "memory, so after writing they sit in the page cache (reads are not from the disk). "
        "The training process's resident memory stays far below the stacks' size: images are "
        "read with `pread` in sorted runs per stack and batch (`ParticleDataset.__getitems__`), "
        "not through a memory map, whose pages would count as resident.",
        "",
        f"(c) The same epoch on the first {n_subset:,} particles, from the stacks on disk vs "
        f"from memory (`--preload`), interleaved: the loader reads all {subset_batches} batches "
        f"in random order, the first {subset_steps} also take a training step"
        + (
            " (not all: a full epoch of steps takes too long on this shared machine; a step "
            "costs the same on both paths)"
            if subset_steps < subset_batches
            else ""
        )
        + ":",
        "",
        "| run | from disk: epoch (s) | loader (s) | process CPU (s) | peak RSS (MiB) | "
        "from memory: epoch (s) | loader (s) | process CPU (s) | peak RSS (MiB) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, (d, m) in enumerate(zip(runs["disk"], runs["memory"])):
        lines.append(
            f"| {k + 1} | {d['result']['epoch_s']:.1f} | {d['result']['load_s']:.1f} | "
            f"{d['cpu_s']:.0f} | {d['peak_rss_mib']:.0f} | {m['result']['epoch_s']:.1f} | "
            f"{m['result']['load_s']:.1f} | {m['cpu_s']:.0f} | {m['peak_rss_mib']:.0f} | "
            f"{ratios[k]:.3f} |"
        )
    lines += [
        "",
        f"Epoch from disk / from memory: {np.median(ratios):.3f} (median of {len(ratios)}); "
        f"the loader's time alone: {load_ratio:.2f} (median disk "
        f"{median('disk', 'load_s'):.1f} s, memory {median('memory', 'load_s'):.1f} s of "
        f"epochs of {median('disk', 'epoch_s'):.0f} and {median('memory', 'epoch_s'):.0f} s). "
        "The memory path holds the 64-px float16 images and crops them per batch like the "
        "disk path; preloading itself (not in the epoch) took "
        f"{median('memory', 'dataset_s'):.1f} s. Peak RSS in (c) includes reading the "
        f"{args.particles:,}-row star file before taking the subset.",
    ]
    if np.median(ratios) <= 1.2:
        lines += [
            "",
            "No cache of Fourier-cropped images is written: the epoch from the stacks is "
            "within 1.2x of the epoch from memory. Where the steps are much faster than here "
            "(a GPU), the per-batch crop is the loader's main cost; DataLoader workers (4 by "
            "default on CUDA) share it.",
        ]
    return "\n".join(lines)


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--star")
    parser.add_argument("--out")
    parser.add_argument("--particles", type=int)
    parser.add_argument("--images-per-stack", type=int)
    parser.add_argument("--reference")
    parser.add_argument("--train-box", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--subset", type=int, default=0)
    parser.add_argument("--steps", type=int, default=-1)
    parser.add_argument("--work")
    parser.add_argument("--preload", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "_tile":
        tile_dataset(args.star, args.out, args.particles, args.images_per_stack)
    else:
        train_epoch(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child(sys.argv[1:])
    else:
        main()

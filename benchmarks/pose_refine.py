"""``--pose-mode refine`` recovers perturbed poses (issue 10).

A simulated AdK open -> closed dataset (``cryomotion simulate``: 64 px at 1.5 Å/px, a
continuous distribution over a 20-frame morph) has its star file's poses perturbed: each
rotation by a random axis and an angle of about 3° (normal, sd 0.9°), each shift by about
1.5 Å in a random direction (sd 0.45 Å). nma and segments then train on the perturbed file
with ``--pose-mode refine`` at the full box (a 32-px crop at 3 Å/px leaves too little
high-frequency signal to fix 3° at this SNR: measured on the reference alone, 2.4° left
after 60 inner steps, against 0.5° at 64 px). Reported: the median angular error and the
median shift error of the perturbed file's poses and of the refined ones
(``RUN/refined_particles.star``), against the true poses. The same on a rigid dataset
(every particle the open state): pose refinement can only be as good as the model of each
particle's conformation, which the flexible case tests.

With ``--polish-steps N ...`` each trained run is then re-predicted (resumed with no more
epochs, ``model.polish_steps`` set) with the per-particle polish (``models.polish``): its
latents and pose correction optimised jointly for N steps from the encoder's estimate and
the pose table's row, instead of the pose alone with the latents fixed.

Results go to the ``pose_refine`` section of docs/results.md.

Usage::

    python benchmarks/pose_refine.py --workdir /tmp/pose_refine
    python benchmarks/pose_refine.py --particles 300 --epochs 1 --no-write   # smoke test
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import shutil
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cryomotion.cli.main import main as cryomotion
from cryomotion.data import read_particles
from cryomotion.data.star import write_star_with_poses
from report import write_section

SYSTEMS = ("nma", "segments")


def perturb(source: Path, target: Path, angle: float, shift: float, seed: int) -> None:
    """Write ``source``'s particles to ``target`` with poses perturbed by about ``angle``°
    and ``shift`` Å (see the module docstring)."""
    table = read_particles(source)
    rng = np.random.default_rng(seed)
    n = len(table)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.deg2rad(rng.normal(angle, 0.3 * angle, n))
    delta = Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
    directions = rng.normal(size=(n, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = rng.normal(shift, 0.3 * shift, n)[:, None]
    shifts = table.shifts + directions * lengths
    write_star_with_poses(target, table, table.rotations @ delta, shifts)


def pose_errors(truth: Path, estimate: Path) -> tuple[float, float]:
    """Median angle (degrees) and shift (Å) between two particle files' poses."""
    true, other = read_particles(truth), read_particles(estimate)
    relative = np.einsum("nji,njk->nik", true.rotations, other.rotations)
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    angles = np.rad2deg(np.arccos(cos))
    shifts = np.linalg.norm(true.shifts - other.shifts, axis=1)
    return float(np.median(angles)), float(np.median(shifts))


def polish_note(args) -> str:
    """How the polish differs from the default (empty if it does not)."""
    if args.polish_prior == "empirical" and not args.polish_candidates:
        return ""
    return f" ({args.polish_prior} prior, {args.polish_candidates} candidates)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/pose_refine")
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--snr", default="-10dB")
    parser.add_argument("--angle", type=float, default=3.0, help="perturbation (degrees)")
    parser.add_argument("--shift", type=float, default=1.5, help="perturbation (Å)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--datasets", nargs="+", default=["flexible", "rigid"])
    parser.add_argument(
        "--polish-steps", type=int, nargs="*", default=[], help="re-predict with these polishes"
    )
    parser.add_argument("--polish-latent-step", type=float, default=0.05)
    parser.add_argument("--polish-prior", default="empirical", choices=("empirical", "none"))
    parser.add_argument(
        "--polish-candidates", type=int, default=0, help="k-means starts searched first"
    )
    parser.add_argument(
        "--train-args", nargs=argparse.REMAINDER, default=[],
        help="further `cryomotion train` flags for every run (last on the line)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    resources = files("cryomotion") / "resources"
    started = datetime.datetime.now().isoformat(timespec="minutes")
    rows = []
    for dataset, closed in (("flexible", "adk_closed.pdb"), ("rigid", "adk_open.pdb")):
        if dataset not in args.datasets:
            continue
        sim = work / ("sim" if dataset == "flexible" else "sim_rigid")
        if not (sim / "particles.star").is_file():
            assert cryomotion([
                "simulate", "--endpoints", str(resources / "adk_open.pdb"),
                str(resources / closed), "--frames", "20", "--distribution", "continuous",
                "--particles", str(args.particles), "--box", "64", "--pixel-size", "1.5",
                "--snr", args.snr, "-o", str(sim),
            ]) == 0  # fmt: skip
        perturbed = work / f"perturbed_{dataset}.star"
        perturb(sim / "particles.star", perturbed, args.angle, args.shift, seed=7)
        errors = pose_errors(sim / "particles.star", perturbed)
        rows.append((dataset, "perturbed file", *errors, None))
        for system in args.systems:
            run = work / f"run_{system}_{dataset}"
            shutil.rmtree(run, ignore_errors=True)  # a run left by an earlier call
            start = time.perf_counter()
            assert cryomotion([
                "train", system, str(perturbed), str(sim / "reference.pdb"), "-o", str(run),
                "--epochs", str(args.epochs), "--batch-size", "32", "--lr", "3e-4",
                "--pose-mode", "refine", "--no-progress", "--force", *args.train_args,
            ]) == 0  # fmt: skip
            minutes = (time.perf_counter() - start) / 60
            errors = pose_errors(sim / "particles.star", run / "refined_particles.star")
            rows.append((dataset, f"{system}, refined", *errors, minutes))
            print(rows[-1], flush=True)
            for steps in args.polish_steps:
                start = time.perf_counter()
                assert cryomotion([
                    "train", system, "-o", str(run), "--resume", "--no-progress",
                    "--set", f"model.polish_steps={steps}",
                    "--set", f"model.polish_latent_step={args.polish_latent_step}",
                    "--set", f"model.polish_prior={args.polish_prior}",
                    "--set", f"model.polish_candidates={args.polish_candidates}",
                ]) == 0  # fmt: skip
                minutes = (time.perf_counter() - start) / 60
                errors = pose_errors(sim / "particles.star", run / "refined_particles.star")
                name = f"{system}, refined + polish {steps}{polish_note(args)}"
                rows.append((dataset, name, *errors, -minutes))
                print(rows[-1], flush=True)
    table = [
        "| dataset | poses | median angle error | median shift error | training time |",
        "|---|---|---:|---:|---:|",
    ]
    for dataset, name, angle, shift, minutes in rows:
        time_cell = "" if minutes is None else f"{abs(minutes):.1f} min"
        if minutes is not None and minutes < 0:
            time_cell += " (prediction)"
        table.append(f"| {dataset} | {name} | {angle:.2f}° | {shift:.2f} Å | {time_cell} |")
    # each system's final poses: the last polish asked for, else the refined run's
    final = "refined"
    if args.polish_steps:
        final = f"refined + polish {args.polish_steps[-1]}{polish_note(args)}"
    refined = [row for row in rows if row[1].endswith(", " + final)]
    met = {
        dataset: all(a < 1.5 and s < 0.7 for d, _, a, s, _ in refined if d == dataset)
        for dataset in args.datasets
    }
    markdown = "\n".join([
        "## pose_refine: `--pose-mode refine` on perturbed poses",
        "",
        f"Run {started} with `benchmarks/pose_refine.py`: {args.particles} simulated AdK "
        f"particles (open → closed, continuous), 64 px at 1.5 Å/px, SNR {args.snr}; the star "
        f"file's rotations perturbed by ~{args.angle:g}° and shifts by ~{args.shift:g} Å; "
        f"{args.epochs} epochs at the full box, batch 32, learning rate 3e-4, default pose "
        "steps (config `model.pose_*`). Errors are against the simulator's true poses.",
        "",
        *table,
        "",
        f"Target (issue 10): below 1.5° and 0.7 Å for both systems ({final}) — "
        + "; ".join(f"{d}: " + ("met" if ok else "**not met**") for d, ok in met.items())
        + ".",
        "Rotations are only as good as the model of each particle's conformation: on the "
        "reference alone (64 px, SNR 0.1, 40 inner steps) refinement brings 3° to 0.5°, but "
        "rendering a model 1.4 Å (Cα-RMSD) away from the imaged conformation leaves 2.7°, and "
        "3.5 Å leaves 5.5°. At −10 dB the systems' per-particle models are 1.5–1.8 Å off "
        "(snr_sweep), so on the flexible set shifts are recovered but rotations only partly "
        "(nma) or not at all (segments, whose errors grow); on the rigid set both reach the "
        "target.",
        "Only the simulator's own data (its units, conventions and noise model) were used; "
        "on a 32-px Fourier crop of the same data the rotations are not recovered (see the "
        "script's docstring).",
    ])  # fmt: skip
    print(markdown)
    if not args.no_write:
        print("wrote", write_section("pose_refine", markdown, "results.md"))


if __name__ == "__main__":
    main()

"""Seed 002 (AtomVAE) at CPU scale: AdK closing by hinges, poses given and inferred.

Data: ``simulate.paths.adk_hinge_path`` (AdK open -> closed, the LID then the NMP domain
turning about hinges: a non-linear motion), ``--frames`` frames drawn uniformly,
``--particles`` particles at ``--box`` px and ``--pixel-size`` Å/px, uniform random poses,
Gaussian shifts (2 Å), log-normal defocus, white noise at ``--snr`` (over the box), all
atoms rendered. The particle file given to the ``infer`` run has no angles.

Runs (``atomvae``, coarse beads, the seed's networks and loss weights, CPU-sized samples):

* ``given``: the file's poses, the conformation stage only (``--pose-epochs 0``);
* ``infer``: no poses from the file: a dream phase (``models.pose_sleep``, not in the seed),
  the seed's pose stage on the base structure, then everything.

Reported: EMD-RMSD (Cα, Å) of ``--ensemble`` models decoded from the prior against as many
true structures (the frames of random particles; the seed's metric: 3.35 Å on Aurora A
with 2,048 and 2,048), next to the rigid reference's; the median per-particle Cα-RMSD of
the posterior-mean models; the pose error of the written poses (median geodesic angle after
the best global rotation, ``analysis.metrics.align_rotations``; a mirrored solution
flagged); training throughput (images/s per phase) and peak memory (RSS). Written to the
``seed002`` section of docs/results.md.

Usage::

    python benchmarks/seed002_adk.py --workdir /tmp/seed002
    python benchmarks/seed002_adk.py --particles 256 --ensemble 256 --epochs 1 \\
        --dream-epochs 1 --pose-epochs 1 --workdir /tmp/s2smoke --no-write   # smoke test
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import datetime
import math
import resource
import time
from pathlib import Path

import numpy as np
import starfile
import torch
from scipy.optimize import linear_sum_assignment

from cryomotion.analysis.metrics import align_rotations, pairwise_rmsd_fast, per_particle_rmsd
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.simulate.paths import adk_hinge_path
from cryomotion.structure.superpose import rmsd
from cryomotion.systems.atomvae import AtomVAESettings
from cryomotion.train.config import DataConfig, ModelConfig, RunConfig, TrainingConfig
from cryomotion.train.results import decode_latents, load_run, particle_coords, prior_latents
from cryomotion.train.run import train_run
from report import write_section

HEADING = "## Seed 002 at CPU scale: AtomVAE on AdK closing by hinges (`benchmarks/seed002_adk.py`)"
SEED_EMD = 3.35  # Å, seed 002 section 5: Aurora A kinase, 2,048 prior vs 2,048 true samples


def simulate(args) -> dict:
    folder = Path(args.workdir) / "data"
    if (folder / "simulation.yaml").is_file():
        paths = {
            "star": folder / "particles.star",
            "reference": folder / "reference.pdb",
            "ground_truth": folder / "ground_truth.npz",
        }
    else:
        reference, frames = adk_hinge_path(args.frames)
        config = SimulationConfig(
            n_particles=args.particles,
            box=args.box,
            pixel_size=args.pixel_size,
            snr=args.snr,
            seed=args.seed,
        )
        paths = simulate_dataset(reference, frames, config, folder, progress=False)
    blocks = starfile.read(paths["star"], always_dict=True)
    angles = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    blocks["particles"] = blocks["particles"].drop(columns=angles)
    paths["no_angles"] = folder / "particles_no_angles.star"
    starfile.write(blocks, paths["no_angles"])
    return paths


def train(args, data: dict, mode: str) -> tuple[Path, float]:
    folder = Path(args.workdir) / (mode + args.tag)
    if (folder / "latents.npz").is_file():
        return folder, float("nan")
    infer = mode == "infer"
    settings = AtomVAESettings(
        coarse=True,
        conformation_samples=args.conformation_samples,
        pose_samples=args.pose_samples,
        stage1_pose_samples=args.stage1_pose_samples,
        pose_epochs=args.pose_epochs if infer else 0,
        dream_epochs=args.dream_epochs if infer else 0,
        continuity_weight=args.continuity_weight,
    )
    epochs = args.epochs + (args.pose_epochs + args.dream_epochs if infer else 0)
    config = RunConfig(
        system="atomvae",
        reference=str(data["reference"]),
        data=DataConfig(particles=str(data["no_angles" if infer else "star"])),
        model=ModelConfig(pose_mode=mode),
        deformation=settings,
        training=TrainingConfig(
            epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, workers=0
        ),
    )
    start = time.perf_counter()
    train_run(config, folder, progress=False, command_line="benchmarks/seed002_adk.py")
    return folder, time.perf_counter() - start


def throughput(folder: Path, phases: list[tuple[str, int]]) -> str:
    """images/s per phase, from metrics.csv (epochs in phase order)."""
    rows = list(csv.DictReader(open(folder / "metrics.csv")))
    parts, start = [], 0
    for name, epochs in phases:
        rates = [float(r["particles_per_s"]) for r in rows[start : start + epochs]]
        start += epochs
        if rates:
            parts.append(f"{name} {np.median(rates):.0f}")
    return ", ".join(parts)


def emd_rmsd(predicted: np.ndarray, truth: np.ndarray) -> float:
    """``analysis.metrics.emd_rmsd`` with the fast pairwise RMSD (2,048² pairs)."""
    cost = pairwise_rmsd_fast(predicted, truth)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def evaluate(args, data: dict, folder: Path) -> dict:
    truth = np.load(data["ground_truth"])
    run = load_run(folder)
    ca = run.reference.ca_index
    true_frames = truth["frame_coords"][:, ca]
    frame_index = truth["frame_index"]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(frame_index), size=min(args.ensemble, len(frame_index)), replace=False)
    true_set = true_frames[frame_index[chosen]]
    prior = decode_latents(run, prior_latents(run, len(chosen), args.seed))[:, ca]
    reference = np.broadcast_to(run.reference.coords[ca], true_set.shape)
    predicted = particle_coords(run, np.arange(run.n_particles))[:, ca]
    per_particle = per_particle_rmsd(predicted, true_frames[frame_index])
    rigid = rmsd(
        np.broadcast_to(run.reference.coords[ca], predicted.shape), true_frames[frame_index]
    )
    errors, _, mirrored = align_rotations(run.rotations, truth["rotations"])
    return {
        "emd": emd_rmsd(prior, true_set),
        "emd_rigid": emd_rmsd(reference, true_set),
        "emd_posterior": emd_rmsd(predicted[chosen], true_set),
        "median_rmsd": float(np.median(per_particle)),
        "rigid_rmsd": float(np.median(rigid)),
        "pose_median": float(np.median(errors)),
        "pose_within_15": float((errors < 15).mean()),
        "mirrored": mirrored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/seed002")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--particles", type=int, default=4096)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--pixel-size", type=float, default=3.0)
    parser.add_argument("--snr", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=8, help="stage 2 epochs")
    parser.add_argument("--pose-epochs", type=int, default=2, help="infer: stage 1 epochs")
    parser.add_argument("--dream-epochs", type=int, default=40, help="infer: dream epochs")
    parser.add_argument("--conformation-samples", type=int, default=8)
    parser.add_argument("--pose-samples", type=int, default=2)
    parser.add_argument("--stage1-pose-samples", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ensemble", type=int, default=2048)
    parser.add_argument("--continuity-weight", type=float, default=0.01, help="the seed's: 0.01")
    parser.add_argument("--modes", default="given,infer", help="runs, e.g. given")
    parser.add_argument("--tag", default="", help="suffix of the runs' folders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = datetime.datetime.now()
    data = simulate(args)
    results = {}
    for mode in args.modes.split(","):
        folder, seconds = train(args, data, mode)
        results[mode] = evaluate(args, data, folder)
        phases = (
            [("dream", args.dream_epochs), ("poses", args.pose_epochs), ("all", args.epochs)]
            if mode == "infer"
            else [("all", args.epochs)]
        )
        results[mode]["rate"] = throughput(folder, phases)
        results[mode]["minutes"] = seconds / 60
        print(mode, results[mode], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    snr_db = 10 * math.log10(args.snr)
    rows = [
        "| poses | EMD-RMSD prior (Å) | EMD-RMSD posterior means (Å) | rigid reference EMD (Å) "
        "| median Cα-RMSD (Å) | rigid median | pose error (median °, after alignment) "
        "| poses within 15° | images/s per phase | train time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for mode, r in results.items():
        pose = "0 (file's)" if mode == "given" else f"{r['pose_median']:.1f}"
        if mode == "infer" and r["mirrored"]:
            pose += " (mirrored)"
        rows.append(
            f"| {mode} | {r['emd']:.2f} | {r['emd_posterior']:.2f} | {r['emd_rigid']:.2f} | "
            f"{r['median_rmsd']:.2f} | {r['rigid_rmsd']:.2f} | {pose} | "
            f"{100 * r['pose_within_15']:.0f} % | {r['rate']} | {r['minutes']:.0f} min |"
        )
    rows.append(f"| seed 002 (Aurora A, TPU) | {SEED_EMD} | – | – | – | – | – | – | – | days |")
    text = f"""{HEADING}

Run {began:%Y-%m-%d %H:%M}, torch {torch.__version__}, {args.threads} CPU thread(s) on a
shared machine (other jobs running: times are upper bounds). Peak memory (RSS) of the whole
benchmark {peak:.1f} GiB. No GPU was lent to this task, so the seed's setting (64 × 4
samples, 128 in stage 1, batch 256, all atoms) was not run.

Set-up: `adk_hinge_path` ({args.frames} frames, LID then NMP closing about hinges),
{args.particles} particles, {args.box} px at {args.pixel_size} Å/px, SNR {args.snr}
({snr_db:.1f} dB over the box), uniform poses, 2 Å shifts, all atoms rendered. AtomVAE with
the seed's networks (MLP 2048-1024-512-512, ResNet 256 × 5, representation 512, pose MLP
32 × 3), latent 32, loss weights (1, 0.01, 0.1, 0.01), Gaussian likelihood (σ = the
measured background noise) and log-mean-exp; CPU-sized: coarse beads (one per residue,
σ = 2 Å), {args.conformation_samples} × {args.pose_samples} samples
({args.stage1_pose_samples} in stage 1), batch {args.batch_size}, Adam {args.lr},
{args.epochs} epochs of stage 2; *infer*: {args.dream_epochs} dream epochs and
{args.pose_epochs} epochs of the seed's stage 1 first, from a file without angles.
EMD-RMSD: {args.ensemble} structures from the prior (or the posterior means of the same
particles) against the true structures of {args.ensemble} random particles, Cα.

{chr(10).join(rows)}
"""
    print(text)
    if not args.no_write:
        write_section("seed002", text, "results.md")


if __name__ == "__main__":
    main()

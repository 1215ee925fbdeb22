"""Seed 003 (3DFlex) on a non-linear AdK motion: does flexible refinement beat rigid
reconstruction where the protein moves?

Data: AdK open -> closed along ``simulate.paths.adk_hinge_path`` (the LID, then the NMP
domain turning about their hinges: a curved path no linear latent follows), frames drawn
uniformly, uniform poses, CTF, white noise at ``--snr``. The 3DFlex run (``train flex``)
trains on a Fourier-cropped box (``--training-box``), its latents started from a
two-mode NMA run on the same particles (the seed starts small, low-SNR particles from
3DVA, a linear method; NMA plays that role here) and standardised. Then ``reconstruct RUN
--flexible`` re-fits the canonical density from zero per half set at the full box by
full-batch L-BFGS, beside the rigid reconstruction (direct Fourier inversion) of the same
particles and split.

Reported (docs/results.md, section ``seed003``):

* the canonical map's FSC to the true map against the rigid map's, globally and in the
  moving domains' mask (LID + NMP) — each map against the true frame it matches best
  (the canonical density need not sit at the open state; the rigid map is an average);
* half-map FSC, flexible against rigid (global and in the consensus mask), and the
  training box's Nyquist;
* the latents against the true path coordinate (|Spearman ρ| of the latents' first
  principal component);
* per-particle Cα-RMSD of the atomic models to the truth (median): 3DFlex (the atoms
  carried by the flow), the NMA run, the rigid reference.

Usage::

    python benchmarks/seed003_adk.py --workdir /tmp/seed003            # ~15 min, 1 thread
    python benchmarks/seed003_adk.py --particles 200 --epochs 2 --workdir /tmp/s3 --no-write
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from cryomotion.analysis.flexible_reconstruction import (
    flexible_half_maps,
    masked_fsc,
    write_flexible_reconstruction,
)
from cryomotion.analysis.maps import atomic_potential_map
from cryomotion.analysis.metrics import per_particle_rmsd, resolution_at
from cryomotion.deform.mesh import soft_mask, threshold_mask
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.simulate.paths import ADK_DOMAINS, adk_hinge_path
from cryomotion.train.config import RunConfig
from cryomotion.train.results import load_run, particle_coords
from cryomotion.train.run import train_run
from report import write_section


def simulate(args, folder: Path) -> Path:
    if (folder / "particles.star").is_file():
        return folder
    reference, frames = adk_hinge_path(args.frames)
    config = SimulationConfig(
        n_particles=args.particles, box=args.box, pixel_size=args.pixel_size, snr=args.snr,
        seed=args.seed,
    )  # fmt: skip
    simulate_dataset(reference, frames, config, folder, progress=False)
    return folder


def base_config(system: str, sim: Path, args) -> RunConfig:
    config = RunConfig(system=system, reference=str(sim / "reference.pdb"))
    config.data.particles = str(sim / "particles.star")
    config.data.box = args.training_box
    config.data.test_fraction = 0.05
    config.training.epochs = args.epochs
    config.training.batch_size = args.batch_size
    config.training.lr = args.lr
    config.training.seed = args.seed
    config.training.workers = 0
    return config


def train_nma(sim: Path, args, folder: Path) -> Path:
    if not (folder / "latents.npz").is_file():
        config = base_config("nma", sim, args)
        config.model.latent_dim = 2
        config.training.epochs = args.nma_epochs
        config.training.batch_size = 32
        config.training.lr = 3e-4
        train_run(config, folder, progress=False, command_line="benchmarks/seed003_adk.py")
    return folder


def train_flex(sim: Path, init: Path, args, folder: Path) -> Path:
    if not (folder / "latents.npz").is_file():
        config = base_config("flex", sim, args)
        config.model.latent_dim = 2
        settings = config.deformation
        settings.init_latents = str(init)
        settings.point_spacing = args.point_spacing
        settings.mesh_spacing = args.mesh_spacing
        settings.predict_steps = 15
        train_run(config, folder, progress=False, command_line="benchmarks/seed003_adk.py")
    return folder


def ca_rmsd(run_dir: Path, truth) -> float:
    run = load_run(run_dir)
    ca = run.reference.ca_index[run.reference.ca_index >= 0]
    predicted = particle_coords(run, np.arange(run.n_particles))[:, ca]
    true = truth["frame_coords"][truth["frame_index"]][:, ca]
    return float(np.median(per_particle_rmsd(predicted, true)))


def map_to_truth(volume, truth, reference, result, moving_atoms) -> dict:
    """FSC of ``volume`` to the best-matching true frame's potential, global and in the
    moving domains' mask: resolutions at 0.5 and 0.143 and the mean FSC to Nyquist."""
    size = volume.shape[0]
    training_nyquist = result.training_nyquist
    best = None
    for frame in np.linspace(0, len(truth["frame_coords"]) - 1, 7).round().astype(int):
        coords = truth["frame_coords"][frame]
        true_map = atomic_potential_map(
            coords, reference.elements, size, result.voxel_size, result.origin
        )
        moving = atomic_potential_map(
            coords[moving_atoms], reference.elements[moving_atoms], size, result.voxel_size,
            result.origin, b_factor=200.0,
        )  # fmt: skip
        mask = soft_mask(threshold_mask(moving, 0.05 * moving.max(), 1))
        # "global": within the consensus mask (a solvent-free comparison for both maps)
        consensus = result.mask
        frequency, whole = masked_fsc(volume, true_map, consensus, result.voxel_size)
        _, local = masked_fsc(volume, true_map, mask, result.voxel_size)
        score = float(local[1:].mean())
        high = frequency > 1.0 / training_nyquist
        if best is None or score > best["mean_masked"]:
            best = {
                "frame": int(frame),
                "mean_masked": score,
                "mean_global": float(whole[1:].mean()),
                "high_global": float(whole[high].mean()),
                "high_masked": float(local[high].mean()),
                "global_0.5": resolution_at(frequency, whole, 0.5),
                "masked_0.5": resolution_at(frequency, local, 0.5),
                "global_0.143": resolution_at(frequency, whole, 0.143),
                "masked_0.143": resolution_at(frequency, local, 0.143),
            }
    return best


def evaluate(sim: Path, nma: Path, flex: Path, halves, args) -> dict:
    with np.load(sim / "ground_truth.npz") as data:
        truth = {key: data[key] for key in data.files}
    run = load_run(flex)
    reference = run.reference
    residues = reference.residue_numbers
    moving_atoms = np.zeros(reference.n_atoms, dtype=bool)
    for first, last in ADK_DOMAINS.values():
        moving_atoms |= (residues >= first) & (residues <= last)
    flexible = 0.5 * (halves.half_maps[0] + halves.half_maps[1])
    rigid = 0.5 * (halves.rigid_half_maps[0] + halves.rigid_half_maps[1])
    position = truth["frame_position"][run.particle_index]
    centred = run.latents - run.latents.mean(0)
    pc1 = np.linalg.svd(centred, full_matrices=False)[2][0]
    rho = abs(spearmanr(centred @ pc1, position).statistic)
    rho_axes = [abs(spearmanr(run.latents[:, k], position).statistic) for k in range(2)]
    start = load_run(nma).latents
    start = start - start.mean(0)
    start_pc1 = start @ np.linalg.svd(start, full_matrices=False)[2][0]
    nma_rho = abs(spearmanr(start_pc1, position).statistic)
    ca = reference.ca_index[reference.ca_index >= 0]
    true = truth["frame_coords"][truth["frame_index"]][:, ca]
    still = np.broadcast_to(reference.coords[ca], true.shape)
    rigid_rmsd = float(np.median(per_particle_rmsd(still, true)))
    return {
        "flexible_to_truth": map_to_truth(flexible, truth, reference, halves, moving_atoms),
        "rigid_to_truth": map_to_truth(rigid, truth, reference, halves, moving_atoms),
        "half_map_0.143": halves.resolutions(0.143),
        "half_map_0.5": halves.resolutions(0.5),
        "half_map_high_band": {
            name: float(curve[halves.frequency > 1.0 / halves.training_nyquist].mean())
            for name, curve in halves.curves.items()
        },
        "training_nyquist": halves.training_nyquist,
        "full_nyquist": 2 * halves.voxel_size,
        "latent_pc1_spearman": float(rho),
        "nma_pc1_spearman": float(nma_rho),
        "latent_axis_spearman": [float(v) for v in rho_axes],
        "rmsd_flex": ca_rmsd(flex, truth),
        "rmsd_nma": ca_rmsd(nma, truth),
        "rmsd_rigid": rigid_rmsd,
    }


def markdown(results: dict, args, seconds: dict) -> str:
    f, r = results["flexible_to_truth"], results["rigid_to_truth"]
    h5, h1 = results["half_map_0.5"], results["half_map_0.143"]
    lines = [
        f"## Seed 003: 3DFlex on a non-linear AdK motion, SNR {args.snr} "
        "(`benchmarks/seed003_adk.py`)",
        "",
        f"{args.particles} AdK particles along `adk_hinge_path` ({args.frames} frames, LID then "
        f"NMP closing about their hinges; uniform), {args.box} px at {args.pixel_size} Å/px, "
        f"SNR {args.snr}, CTF. 3DFlex trained on {args.training_box}-px Fourier crops "
        f"(Nyquist {results['training_nyquist']:.2f} Å), {args.epochs} epochs, batch "
        f"{args.batch_size}, Adam {args.lr:g}, K = 2, canonical pseudo-atoms every "
        f"{args.point_spacing} Å, mesh {args.mesh_spacing} Å, latents started from a 2-mode "
        f"NMA run ({args.nma_epochs} epochs); half maps at the full box by L-BFGS "
        f"({args.lbfgs} passes per half). Run {datetime.date.today()} on 1 CPU thread, under "
        "load from other jobs: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".",
        "",
        "FSC of each map to the true map (mean-removed, soft masks; each map against the "
        "true frame of the path it matches best); *high band*: the mean FSC beyond the "
        "training Nyquist.",
        "",
        "| map vs truth | FSC 0.5, consensus mask | FSC 0.5, moving domains "
        "| mean FSC, consensus mask | mean FSC, moving domains | high band, consensus mask "
        "| high band, moving domains | best frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {label} | {m['global_0.5']:.2f} Å | {m['masked_0.5']:.2f} Å | "
            f"{m['mean_global']:.3f} | {m['mean_masked']:.3f} | {m['high_global']:.3f} | "
            f"{m['high_masked']:.3f} | {m['frame']} of {args.frames - 1} |"
            for label, m in (
                ("3DFlex canonical (mean of half maps)", f),
                ("rigid reconstruction (same particles)", r),
            )
        ],
        "",
        "| half-map FSC | flexible | flexible, masked | rigid | rigid, masked |",
        "|---|---:|---:|---:|---:|",
        f"| 0.143 | {h1['flexible']:.2f} Å | {h1['flexible_masked']:.2f} Å | {h1['rigid']:.2f} Å "
        f"| {h1['rigid_masked']:.2f} Å |",
        f"| 0.5 | {h5['flexible']:.2f} Å | {h5['flexible_masked']:.2f} Å | {h5['rigid']:.2f} Å "
        f"| {h5['rigid_masked']:.2f} Å |",
        "| mean FSC beyond the training Nyquist | "
        + " | ".join(
            f"{results['half_map_high_band'][k]:.3f}"
            for k in ("flexible", "flexible_masked", "rigid", "rigid_masked")
        )
        + " |",
        "",
        f"Latents vs the true path coordinate: |Spearman ρ| {results['latent_pc1_spearman']:.2f} "
        "(first principal component), per axis "
        + ", ".join(f"{v:.2f}" for v in results["latent_axis_spearman"])
        + f"; the NMA latents it started from: {results['nma_pc1_spearman']:.2f}.",
        "",
        "| per-particle Cα-RMSD to the truth (median) | Å |",
        "|---|---:|",
        f"| 3DFlex (reference atoms carried by the flow) | {results['rmsd_flex']:.2f} |",
        f"| NMA, 2 modes (the initialisation) | {results['rmsd_nma']:.2f} |",
        f"| rigid reference | {results['rmsd_rigid']:.2f} |",
    ]
    lines += ["", closing_note(results)]
    return "\n".join(lines)


def closing_note(results: dict) -> str:
    """What the numbers say about the seed's claim, in words."""
    f, r = results["flexible_to_truth"], results["rigid_to_truth"]
    moving = f["mean_masked"] - r["mean_masked"]
    overall = f["mean_global"] - r["mean_global"]
    verdict = "beats" if moving > 0.01 else ("matches" if moving > -0.01 else "trails")
    text = (
        f"**Verdict.** In the moving domains the 3DFlex canonical map {verdict} the rigid "
        f"reconstruction against the truth (mean FSC {f['mean_masked']:.3f} vs "
        f"{r['mean_masked']:.3f}, beyond the training Nyquist {f['high_masked']:.3f} vs "
        f"{r['high_masked']:.3f}); over the whole consensus mask the difference is "
        f"{overall:+.3f}. The rigid map matches frame {r['frame']} of the path best, the "
        f"canonical map frame {f['frame']} (frame 0 is the reference it started from)."
    )
    if r["high_global"] > f["high_global"]:
        text += (
            f" Over the whole mask beyond the training Nyquist the rigid map is ahead "
            f"({r['high_global']:.3f} vs {f['high_global']:.3f}): the static core fills most of "
            "the mask, where convection has nothing to gain, and the likely costs are the few "
            "L-BFGS passes (an iterative least-squares fit resolves the highest frequencies "
            "last, while direct Fourier inversion is exact) and residual flow in the core "
            "(not measured separately)."
        )
    text += (
        " The unmasked half-map FSC of the flexible maps is flattered by their shared "
        "support (pseudo-atoms only inside the consensus mask, so the solvent is exactly zero "
        "in both halves); the masked columns compare like with like."
    )
    if moving <= 0.01:
        text += (
            " Where it does not win, the flow has not captured the motion well enough for "
            "convection to align the domains better than averaging does: the latents follow "
            f"the true path coordinate with |ρ| {results['latent_pc1_spearman']:.2f} only"
        )
        if results["rmsd_flex"] > results["rmsd_nma"]:
            text += (
                " (better than the NMA latents it started from, "
                f"|ρ| {results['nma_pc1_spearman']:.2f}), but the flow it learned carries the "
                f"atoms less accurately than the NMA run ({results['rmsd_flex']:.2f} vs "
                f"{results['rmsd_nma']:.2f} Å): at this noise level the short training fits "
                "the domains' motion too loosely for convection to pay off"
            )
        text += "."
    text += (
        f" A resolution of {results['full_nyquist']:.2f} Å (the full box's Nyquist) means the "
        "curve never fell below the threshold: at this noise level and particle count such "
        "thresholds saturate, so the mean FSCs are the comparison."
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/seed003"))
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--box", type=int, default=40)
    parser.add_argument("--pixel-size", type=float, default=2.0)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--training-box", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--nma-epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--point-spacing", type=float, default=3.0)
    parser.add_argument("--mesh-spacing", type=float, default=8.0)
    parser.add_argument("--lbfgs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--section", default="seed003", help="docs/results.md section name")
    parser.add_argument("--report-only", action="store_true", help="rewrite from results.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    saved = args.workdir / "results.json"
    if args.report_only:  # rewrite the section from a finished run's results
        results = json.loads(saved.read_text())
        text = markdown(results, args, results.pop("seconds", {}))
        print(text)
        if not args.no_write:
            write_section(args.section, text, "results.md")
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    start = time.perf_counter()
    sim = simulate(args, args.workdir / "sim")
    seconds["simulate"] = time.perf_counter() - start
    start = time.perf_counter()
    nma = train_nma(sim, args, args.workdir / "nma")
    seconds["NMA"] = time.perf_counter() - start
    start = time.perf_counter()
    flex = train_flex(sim, nma, args, args.workdir / "flex")
    seconds["3DFlex training"] = time.perf_counter() - start
    start = time.perf_counter()
    halves = flexible_half_maps(flex, iterations=args.lbfgs, progress=False, device="cpu")
    write_flexible_reconstruction(halves, args.workdir / "halves")
    seconds["half maps (L-BFGS) + rigid"] = time.perf_counter() - start
    results = evaluate(sim, nma, flex, halves, args)
    results["seconds"] = seconds
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))
    text = markdown(results, args, seconds)
    print(text)
    if not args.no_write:
        write_section(args.section, text, "results.md")


if __name__ == "__main__":
    main()

"""Why nma is worse than the rigid reference on the hinge path (issue 18), and a remedy.

Datasets as ``compare_adk.py`` (AdK open -> closed, 64 px at 1.5 Å/px, frames uniform over
the path, rescaled to unit noise variance): the hinge path (``simulate.paths.adk_hinge_path``:
the LID closes, then the NMP domain, the core held still) at −10 and −20 dB; the linear
morph at −20 dB; and, as the diagnosis, the hinge path with every frame superposed onto the
reference (all atoms, Kabsch) before simulating, i.e. the same shapes without the rigid
turn that the core-fixed frames make against the reference (up to 12°). nma trains as
``cryomotion train nma`` does by default (32-px crops, batch 64, 4 epochs, seed 0), once as
seed 000 (no rotation correction, no prior on the amplitudes), with each of the two remedies
alone, and with both (today's default: the encoder's rotation correction of the pose,
``deformation.rotation_unit`` 20°, and the thermal prior on the amplitudes,
``deformation.prior_weight`` 3e-4, ``deform.normal_modes``).

Scored per run (Cα): median per-particle RMSD to the true frame (after superposition) and
without superposition, the rigid reference's, and for modes 1–3 the slope of the predicted
amplitudes on the true ones (the frame superposed onto the reference and projected on the
mode, Å in the modes' normalisation): 1 is right, near 0 a mode left unused, > 1 a mode
inflated to stand in for another. Results go to the ``nma_hinge`` section of docs/results.md.

Usage::

    python benchmarks/nma_hinge.py --workdir /tmp/nma_hinge
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

from compare_adk import dataset
from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.paths import adk_hinge_path
from cryomotion.structure.superpose import superpose
from cryomotion.systems.nma import NormalModeSettings
from cryomotion.train.config import RunConfig
from cryomotion.train.results import load_run, particle_coords
from cryomotion.train.run import train_run
from report import write_section


def superposed_hinge_path(n_frames: int):
    """The hinge path's frames each superposed onto the reference (no rigid turn left)."""
    reference, frames = adk_hinge_path(n_frames)
    return reference, superpose(frames, np.broadcast_to(reference.coords, frames.shape))


PATHS = {"hinge": adk_hinge_path, "linear": adk_morph, "hinge superposed": superposed_hinge_path}
DATASETS = (("hinge", -10.0), ("hinge superposed", -10.0), ("hinge", -20.0), ("linear", -20.0))
# variant -> (rotation_unit °, prior_weight)
VARIANTS = {
    "seed 000": (0.0, 0.0),
    "rotation head": (20.0, 0.0),
    "mode prior": (0.0, 3e-4),
    "both (default)": (20.0, 3e-4),
}


def simulate(path: str, snr_db: float, args) -> dict:
    import compare_adk

    compare_adk.PATHS[path] = PATHS[path]
    folder = args.workdir / f"{path.replace(' ', '_')}_{snr_db:g}dB"
    return dataset(path, snr_db, args, folder)


def train(data: dict, variant: tuple[float, float], run_dir: Path, args) -> float:
    config = RunConfig(system="nma", reference=str(data["reference"]))
    config.data.particles = str(data["star"])
    config.data.box = args.training_box
    config.deformation = NormalModeSettings(rotation_unit=variant[0], prior_weight=variant[1])
    config.training.epochs = args.epochs
    config.training.batch_size = args.batch_size
    config.training.seed = args.seed
    config.training.device = "cpu"
    start = time.perf_counter()
    if not (run_dir / "latents.npz").is_file():
        train_run(config, run_dir, progress=False, command_line="benchmarks/nma_hinge.py")
    return time.perf_counter() - start


def score(run_dir: Path, truth_path: Path) -> dict:
    run = load_run(run_dir)
    with np.load(truth_path, allow_pickle=False) as truth:
        true = truth["frame_coords"][truth["frame_index"][run.particle_index]].astype(np.float64)
    ca = run.reference.ca_index[run.reference.ca_index >= 0]
    predicted = particle_coords(run, np.arange(run.n_particles)).astype(np.float64)
    reference = run.reference.coords.astype(np.float64)
    with np.load(run_dir / "modes.npz", allow_pickle=False) as saved:
        modes = saved["vectors"][: run.latents.shape[1]].reshape(run.latents.shape[1], -1)
    aligned = superpose(true, np.broadcast_to(reference, true.shape))
    true_amplitudes = (aligned - reference).reshape(len(true), -1) @ modes.T
    slopes = [float(np.polyfit(true_amplitudes[:, k], run.latents[:, k], 1)[0]) for k in range(3)]
    return {
        "rmsd": float(np.median(per_particle_rmsd(predicted[:, ca], true[:, ca]))),
        "rmsd_unaligned": float(
            np.median(per_particle_rmsd(predicted[:, ca], true[:, ca], align=False))
        ),
        "rigid": float(
            np.median(
                per_particle_rmsd(np.broadcast_to(reference[ca], true[:, ca].shape), true[:, ca])
            )
        ),
        "slopes": slopes,
    }


def markdown(results: dict, args, load: str) -> str:
    lines = [
        "## nma on the hinge path: the rigid turn the modes cannot hold "
        "(`benchmarks/nma_hinge.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, 1 CPU thread on a shared machine (load "
        f"average {load}): {args.particles} AdK particles per dataset, 64 px at 1.5 Å/px, "
        f"{args.frames} frames uniform over the path, unit noise variance; `cryomotion train "
        f"nma` defaults (16 modes, {args.training_box}-px crops, batch {args.batch_size}, "
        f"{args.epochs} epochs, seed {args.seed}). Cα medians over the particles (Å): RMSD "
        "to the true frame after superposition / without; slopes of the predicted amplitudes "
        "of modes 1, 2, 3 on the true ones (1: right; 0: unused; > 1 or < 0: standing in "
        "for another).",
        "",
        "| dataset | rigid | variant | RMSD / unaligned | slopes modes 1, 2, 3 |",
        "|---|---:|---|---:|---|",
    ]
    for label, cell in results.items():
        for variant, row in cell.items():
            slopes = ", ".join(f"{s:+.2f}" for s in row["slopes"])
            lines.append(
                f"| {label} | {row['rigid']:.2f} | {variant} | {row['rmsd']:.2f} / "
                f"{row['rmsd_unaligned']:.2f} | {slopes} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("nma_hinge_work"))
    parser.add_argument("--particles", type=int, default=800)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=1.5)
    parser.add_argument("--training-box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--notes", default="", help="markdown appended to the section")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    args = parser.parse_args()
    results: dict = {}
    for path, snr_db in DATASETS:
        label = f"{path} {snr_db:g} dB"
        data = simulate(path, snr_db, args)
        results[label] = {}
        for variant, settings in VARIANTS.items():
            name = f"{path}_{snr_db:g}dB".replace(" ", "_")
            run_dir = args.workdir / "runs" / name / variant.split()[0].replace(" ", "_")
            train(data, settings, run_dir, args)
            results[label][variant] = score(run_dir, data["ground_truth"])
            print(label, variant, json.dumps(results[label][variant]), flush=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = markdown(results, args, load) + ("\n\n" + args.notes if args.notes else "")
    print(text)
    if not args.no_write:
        print(write_section("nma_hinge", text, document="results.md"))


if __name__ == "__main__":
    main()

"""Seed 004 (DeepHEMNMA) at CPU scale: AdK 4AKE, three normal modes, the seed's two tables.

The seed (Hamitouche & Jonić, poster) deforms AdK (PDB 4AKE chain A) along its normal
modes 7-9 (ElNemo's numbering: 1-6 are rigid) with amplitudes

    q7 = -200 r,   q8 = 200 sin(π r),   q9 = 200 cos(π r),   r ~ U[0, 1],

for unit-norm mode vectors over the model's atoms. cryomotion's bundled ``adk_open.pdb`` is
4AKE chain A with its 1656 heavy atoms, and its modes (``dynamics.anm``, Cα network, 15 Å
cutoff, extended to every atom) are orthonormal over those atoms, so the seed's amplitudes
are ours unchanged: amplitude 200 moves the atoms by 200/√1656 = 4.9 Å RMS (see
docs/conventions.md). Our modes 1-3 stand for the seed's 7-9.

**Experiment I** (the network trained on the true amplitudes): eight datasets, random
projection directions with the in-plane angle psi = 0 or uniform, shifts 0 or uniform in
±``--shift`` Å per axis, noise-free without CTF or at SNR 0.1 with 0.5 µm defocus. The
ResNet regressor of the deephemnma system (``models.alignment.AlignmentRegressor``, trained
by the shared ``Trainer`` with ``RegressionObjective`` and early stopping on a held-out
tenth) is trained on ``--train`` particles and scored on ``--test`` others: per mode the
mean ± sd of the absolute amplitude error, and the global error (the mean of the three,
which is how the seed's global column relates to its per-mode columns).

**Experiment II** (the network trained on our alignment): one noisy dataset (random
in-plane angle and shifts, SNR 0.1, 0.5 µm) whose particle file holds the true poses
perturbed by ~1° and ~0.5 Å (a consensus refinement's error); ``cryomotion train
deephemnma --pose-mode refine --align-fraction F`` aligns a random F of the particles
elastically, trains the regressor on them and predicts the rest. Reported as the seed
does: inferred vs aligned (on the aligned particles held out for validation), inferred vs
truth (the regressed particles), aligned vs truth (the aligned particles), and the mean
atomic coordinate error (RMS over atoms: |Δq|/√N for orthonormal modes). Speed: images/s
of the alignment and of the regressor on this machine, and the accuracy given up.

Results go to the ``seed004`` section of docs/results.md.

Usage::

    python benchmarks/seed004_adk.py --workdir /tmp/seed004
    python benchmarks/seed004_adk.py --train 200 --test 100 --particles 300 --no-write  # smoke
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import math
import re
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from cryomotion.data.particles import ParticleTable
from cryomotion.data.poses import euler_to_matrix
from cryomotion.data.stack import StackWriter
from cryomotion.data.star import write_star
from cryomotion.deform.normal_modes import NormalModeDeformation
from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.dynamics.modes import NormalModes
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.alignment import (
    Alignment,
    AlignmentRegressor,
    AlignmentSettings,
    ElasticAlignment,
)
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import RegressionObjective
from cryomotion.models.schedule import Phase
from cryomotion.structure.io import read_model, write_models
from cryomotion.systems.deephemnma import DeepHEMNMASettings
from cryomotion.train.config import DataConfig, ModelConfig, RunConfig, TrainingConfig
from cryomotion.train.run import train_run
from cryomotion.train.trainer import Trainer
from report import write_section

# The seed's tables: (in-plane rotation, shift, noisy) -> global, (mean, sd) per mode.
SEED_I = {
    (False, False, False): (2.32, [(1.49, 2.06), (3.10, 4.49), (2.35, 2.90)]),
    (False, False, True): (5.79, [(3.62, 4.91), (7.27, 10.69), (6.49, 9.09)]),
    (False, True, False): (4.83, [(3.02, 4.55), (6.14, 10.11), (5.32, 8.61)]),
    (False, True, True): (7.95, [(4.90, 6.72), (9.85, 14.72), (9.10, 13.32)]),
    (True, False, False): (16.86, [(10.32, 15.38), (19.53, 29.60), (20.74, 33.43)]),
    (True, False, True): (19.62, [(12.00, 17.64), (22.32, 31.95), (24.53, 39.03)]),
    (True, True, False): (23.51, [(14.67, 21.14), (24.44, 34.00), (31.42, 49.10)]),
    (True, True, True): (27.60, [(17.14, 23.65), (29.12, 39.42), (36.55, 54.46)]),
}
SEED_II = {
    "inferred vs aligned": (19.03, [(12.35, 16.47), (19.58, 26.15), (25.16, 34.60)]),
    "inferred vs truth": (20.22, [(12.61, 16.84), (20.94, 27.37), (27.13, 36.82)]),
    "aligned vs truth": (6.58, [(5.75, 8.42), (6.23, 7.20), (7.76, 7.23)]),
}
SEED_COORDINATE_ERROR = 0.9  # Å, "average atomic-coordinate error"
DEFOCUS = 5000.0  # Å: the seed's 0.5 µm (underfocus)
SNR = 0.1


# -- the data -------------------------------------------------------------------------
def seed_amplitudes(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) the seed's amplitudes of its modes 7-9 (our 1-3)."""
    r = rng.uniform(0.0, 1.0, n)
    return np.stack([-200 * r, 200 * np.sin(np.pi * r), 200 * np.cos(np.pi * r)], axis=1)


def random_poses(n: int, rng, in_plane: bool, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform projection directions, psi uniform or 0, shifts uniform in ±shift Å."""
    rot = rng.uniform(0, 360, n)
    tilt = np.rad2deg(np.arccos(rng.uniform(-1, 1, n)))
    psi = rng.uniform(0, 360, n) if in_plane else np.zeros(n)
    shifts = rng.uniform(-shift, shift, (n, 2)) if shift else np.zeros((n, 2))
    return euler_to_matrix(rot, tilt, psi), shifts


def ctf_rows(n: int, noisy: bool) -> np.ndarray | None:
    if not noisy:
        return None
    ctf = np.zeros((n, 8))
    ctf[:, :2] = DEFOCUS
    ctf[:, 3], ctf[:, 4], ctf[:, 5] = 300.0, 2.7, 0.1
    return ctf


class Setup:
    """The reference in the box frame, its modes, the deformation and the renderer."""

    def __init__(self, box: int, pixel_size: float):
        model = read_model(files("cryomotion") / "resources" / "adk_open.pdb")
        centre = (box // 2) * pixel_size
        self.reference = model.with_coords(model.coords - model.coords.mean(0) + centre)
        self.modes = compute_normal_modes(self.reference, n_modes=3)
        self.deformation = NormalModeDeformation(self.reference.coords, self.modes.vectors)
        self.renderer = AtomRenderer.from_model(self.reference, box, pixel_size)
        self.box, self.pixel_size = box, pixel_size

    @torch.no_grad()
    def render(self, amplitudes, rotations, shifts, ctf, chunk: int = 256) -> torch.Tensor:
        images = []
        for start in range(0, len(amplitudes), chunk):
            part = slice(start, start + chunk)
            points = self.deformation(torch.as_tensor(amplitudes[part], dtype=torch.float32))
            images.append(
                self.renderer(
                    points.points,
                    torch.as_tensor(rotations[part], dtype=torch.float32),
                    torch.as_tensor(shifts[part], dtype=torch.float32),
                    None if ctf is None else torch.as_tensor(ctf[part], dtype=torch.float32),
                )
            )
        return torch.cat(images)


def add_noise(images: torch.Tensor, snr: float, seed: int) -> torch.Tensor:
    """White noise at ``snr`` = mean clean-image variance / σ² (docs/conventions.md)."""
    sigma = math.sqrt(float(images.flatten(1).var(dim=1).mean()) / snr)
    generator = torch.Generator().manual_seed(seed)
    return images + sigma * torch.randn(images.shape, generator=generator)


class Images(torch.utils.data.Dataset):
    def __init__(self, images, rotations, shifts):
        self.images = images
        self.rotations = torch.as_tensor(rotations, dtype=torch.float32)
        self.shifts = torch.as_tensor(shifts, dtype=torch.float32)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            "image": self.images[i],
            "rotation": self.rotations[i],
            "shift": self.shifts[i],
            "index": torch.tensor(i),
        }


# -- scores ---------------------------------------------------------------------------
def errors(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, list[tuple[float, float]]]:
    """Global error (mean of the per-mode means) and per mode (mean, sd) of |Δq|."""
    absolute = np.abs(estimate - truth)
    per_mode = [(float(a.mean()), float(a.std())) for a in absolute.T]
    return float(np.mean([m for m, _ in per_mode])), per_mode


def coordinate_error(estimate: np.ndarray, truth: np.ndarray, n_atoms: int) -> float:
    """Mean over particles of the RMS atomic displacement between the two models (Å)."""
    return float((np.linalg.norm(estimate - truth, axis=1) / math.sqrt(n_atoms)).mean())


def cells(result: tuple[float, list[tuple[float, float]]]) -> list[str]:
    total, per_mode = result
    return [f"{total:.2f}"] + [f"{m:.2f} ± {s:.2f}" for m, s in per_mode]


# -- experiment I ---------------------------------------------------------------------
def experiment_one(setup: Setup, case, args, seed: int) -> dict:
    in_plane, shifted, noisy = case
    n = args.train + args.test
    rng = np.random.default_rng(seed)
    amplitudes = seed_amplitudes(n, rng)
    rotations, shifts = random_poses(n, rng, in_plane, args.shift if shifted else 0.0)
    images = setup.render(amplitudes, rotations, shifts, ctf_rows(n, noisy))
    if noisy:
        images = add_noise(images, SNR, seed)
    images = images / images[: args.train].std()  # the network's input at unit scale
    torch.manual_seed(seed)
    motion = regressor_model(setup, n, args)
    values = torch.zeros(n, 8)
    values[:, :3] = torch.as_tensor(amplitudes, dtype=torch.float32)
    dataset = Images(images, rotations, np.zeros((n, 2)))  # the network never sees the pose
    batch = {"rotation": dataset.rotations, "shift": dataset.shifts}
    pose = motion.inference.estimates(values, batch).pose
    motion.inference.store(torch.arange(n), Alignment(values, torch.zeros(n), torch.zeros(n)), pose)
    order = rng.permutation(args.train)
    n_validation = args.train // 10
    trainer = Trainer(
        motion,
        dataset,
        np.sort(order[n_validation:]),
        np.sort(order[:n_validation]),
        TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed),
        progress=False,
        schedule=[Phase("regress", args.epochs, RegressionObjective())],
        patience=args.patience,
    )
    start = time.perf_counter()
    history = trainer.fit()
    train_seconds = time.perf_counter() - start
    test = np.arange(args.train, n)
    start = time.perf_counter()
    predicted = trainer.predict(test)["latents"]
    predict_seconds = time.perf_counter() - start
    return {
        "case": list(case),
        "errors": errors(predicted, amplitudes[test]),
        "epochs": len(history),
        "train_seconds": train_seconds,
        "regressor_images_per_s": len(test) / predict_seconds,
    }


def regressor_model(setup: Setup, n: int, args) -> MotionModel:
    """The deephemnma system's regressor (amplitudes only) on the setup's deformation."""
    encoder = ImageEncoder(
        setup.box,
        {"latents": 3},
        width=args.width,
        norm="batch",
        trunk="resnet",
        resnet_blocks=tuple(args.blocks),
    )
    scale = setup.deformation.latent_scale
    alignment = ElasticAlignment(3, scale, AlignmentSettings(refine_pose=False))
    inference = AlignmentRegressor(encoder, 3, scale, n, alignment)
    return MotionModel(inference, setup.deformation, setup.renderer, IntensityScale(mode="none"))


# -- experiment II --------------------------------------------------------------------
def write_dataset(setup: Setup, folder: Path, args, seed: int) -> dict:
    """The noisy dataset of experiment II on disk (stack, star with perturbed poses)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = args.particles
    rng = np.random.default_rng(seed)
    amplitudes = seed_amplitudes(n, rng)
    rotations, shifts = random_poses(n, rng, True, args.shift)
    ctf = ctf_rows(n, True)
    images = add_noise(setup.render(amplitudes, rotations, shifts, ctf), SNR, seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.deg2rad(np.abs(rng.normal(0, args.pose_error, n)))
    from scipy.spatial.transform import Rotation

    file_rotations = rotations @ Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
    file_shifts = shifts + rng.normal(0, args.shift_error / math.sqrt(2), (n, 2))
    stack = folder / "particles.mrcs"
    with StackWriter(stack, n, setup.box, setup.pixel_size) as writer:
        writer.write(0, images.numpy())
    table = ParticleTable(
        rotations=file_rotations,
        shifts=file_shifts,
        ctf=ctf,
        pixel_size=np.full(n, setup.pixel_size),
        box_size=setup.box,
        image_files=np.full(n, str(stack.resolve())),
        image_indices=np.arange(n),
        optics_group=np.ones(n, dtype=np.int64),
        source=str(folder / "particles.star"),
    )
    write_star(folder / "particles.star", table)
    write_models(folder / "reference.pdb", setup.reference, setup.reference.coords)
    return {
        "amplitudes": amplitudes,
        "rotations": rotations,
        "shifts": shifts,
        "file_rotations": file_rotations,
        "file_shifts": file_shifts,
    }


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    relative = np.einsum("nji,njk->nik", a, b)
    cos = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    return np.rad2deg(np.arccos(cos))


def experiment_two(setup: Setup, workdir: Path, args, seed: int) -> dict:
    truth = write_dataset(setup, workdir / "data", args, seed)
    run = workdir / "run"
    settings = DeepHEMNMASettings(
        align_fraction=args.align_fraction,
        validation_fraction=0.2,
        patience=args.patience,
        start_grid=3,
        start_amplitude=3.0,
        refine_starts=1,
        rotation_prior=args.pose_error,  # MAP: the consensus error is known to be about this
        shift_prior=args.shift_error,
        resnet_width=args.width,
        resnet_blocks=list(args.blocks),
    )
    config = RunConfig(
        system="deephemnma",
        reference=str(workdir / "data" / "reference.pdb"),
        data=DataConfig(particles=str(workdir / "data" / "particles.star")),
        model=ModelConfig(latent_dim=3, pose_mode="refine"),
        deformation=settings,
        training=TrainingConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, device="cpu"
        ),
    )
    start = time.perf_counter()
    train_run(config, run, progress=False)
    run_seconds = time.perf_counter() - start
    with np.load(run / "latents.npz") as data:
        out = {key: data[key] for key in data.files}
    # our modes' signs as the run computed them (the same network, so the same modes)
    signs = np.sign(
        np.einsum("kai,kai->k", NormalModes.load(run / "modes.npz").vectors, setup.modes.vectors)
    )
    latents, regressed = out["latents"] * signs, out["regressed_latents"] * signs
    aligned, validation = out["aligned"], out["aligned"] & out["is_test"]
    q = truth["amplitudes"]
    n_atoms = setup.reference.n_atoms
    log = (run / "train.log").read_text()
    match = re.search(r"elastic alignment of (\d+) particles: ([\d.]+) s", log)
    align_seconds = float(match.group(2)) if match else float("nan")
    comparisons = {
        "inferred vs aligned": (regressed[validation], latents[validation]),
        "inferred vs truth": (latents[~aligned], q[~aligned]),
        "aligned vs truth": (latents[aligned], q[aligned]),
    }
    return {
        "particles": int(len(q)),
        "aligned": int(aligned.sum()),
        "validation": int(validation.sum()),
        "errors": {k: errors(a, b) for k, (a, b) in comparisons.items()},
        "coordinate_error": {
            k: coordinate_error(a, b, n_atoms) for k, (a, b) in comparisons.items()
        },
        "pose": {
            "file angle (°)": float(
                np.median(angle_between(truth["file_rotations"], truth["rotations"]))
            ),
            "file shift (Å)": float(
                np.median(np.linalg.norm(truth["file_shifts"] - truth["shifts"], axis=1))
            ),
            "aligned angle (°)": float(
                np.median(angle_between(out["rotations"][aligned], truth["rotations"][aligned]))
            ),
            "aligned shift (Å)": float(
                np.median(np.linalg.norm(out["shifts"][aligned] - truth["shifts"][aligned], axis=1))
            ),
            "regressed angle (°)": float(
                np.median(angle_between(out["rotations"][~aligned], truth["rotations"][~aligned]))
            ),
        },
        "align_seconds": align_seconds,
        "align_images_per_s": float(aligned.sum()) / align_seconds,
        "run_seconds": run_seconds,
    }


# -- report ---------------------------------------------------------------------------
def markdown(one: list[dict], two: dict, args) -> str:
    def case_name(case):
        in_plane, shifted, noisy = case
        rotation = "random in-plane rotation" if in_plane else "no in-plane rotation"
        shift = "random shift" if shifted else "no shift"
        return f"{rotation}, {shift}", ("SNR 0.1, 0.5 µm" if noisy else "none")

    lines = [
        "## Seed 004 at CPU scale: DeepHEMNMA on AdK (`benchmarks/seed004_adk.py`)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {args.threads} CPU "
        f"thread{'s' if args.threads > 1 else ''} (other jobs running: timings are "
        "indicative), "
        f"{two.get('total_seconds', float('nan')) / 60:.0f} min in all. Seed: 4AKE chain A, "
        "modes 7-9, images of unknown size "
        f"(HEMNMA's usual 128 px); here: our modes 1-3 of the same 1656 atoms, "
        f"{args.box} px at {args.pixel_size} Å/px, amplitudes in the seed's units "
        "(unit-norm modes over the 1656 heavy atoms: 200 = 4.9 Å RMS; docs/conventions.md). "
        f"Regressor: the deephemnma ResNet (width {args.width}, blocks {args.blocks}), "
        f"batch {args.batch_size}, Adam {args.lr}, ≤ {args.epochs} epochs with early "
        f"stopping (patience {args.patience}) on a held-out tenth.",
        "",
        f"### Experiment I: regressor trained on the true amplitudes ({args.train} training, "
        f"{args.test} test particles; shifts uniform in ±{args.shift} Å)",
        "",
        "Absolute amplitude error on the test particles, mean ± sd; global = mean of the "
        "three modes. Seed's values in brackets.",
        "",
        "| case | noise, defocus | global | q1 (seed q7) | q2 (q8) | q3 (q9) | epochs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    sample = seed_amplitudes(100_000, np.random.default_rng(0))
    baseline = errors(np.broadcast_to(sample.mean(0), sample.shape), sample)
    lines.append(
        "| *(a network predicting the mean amplitudes, for scale)* | any | "
        + " | ".join(cells(baseline))
        + " | |"
    )
    for row in one:
        case = tuple(row["case"])
        ours, seed = cells(row["errors"]), cells(SEED_I[case])
        name, noise = case_name(case)
        merged = [f"{o} [{s}]" for o, s in zip(ours, seed)]
        lines.append(f"| {name} | {noise} | " + " | ".join(merged) + f" | {row['epochs']} |")
    lines += [
        "",
        f"### Experiment II: regressor trained on our elastic alignment ({two['particles']} "
        f"particles, random in-plane rotation and shifts, SNR 0.1, 0.5 µm; {two['aligned']} "
        f"aligned (`--align-fraction {args.align_fraction}`), {two['validation']} of them "
        "held out for validation; the file's poses off by "
        f"{two['pose']['file angle (°)']:.2f}° and {two['pose']['file shift (Å)']:.2f} Å "
        "(median), refined by the alignment with Gaussian priors of that size)",
        "",
        "| errors | global | q1 (seed q7) | q2 (q8) | q3 (q9) | atomic coordinates (Å, RMS) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, result in two["errors"].items():
        ours, seed = cells(result), cells(SEED_II[name])
        merged = [f"{o} [{s}]" for o, s in zip(ours, seed)]
        lines.append(
            f"| {name} | " + " | ".join(merged) + f" | {two['coordinate_error'][name]:.2f} |"
        )
    pose = two["pose"]
    one_rate = np.median([row["regressor_images_per_s"] for row in one])
    hemnma_all = two["particles"] / two["align_images_per_s"]
    lines += [
        "",
        f"The seed's average atomic-coordinate error: {SEED_COORDINATE_ERROR} Å. Poses "
        f"(median angle to the truth): file {pose['file angle (°)']:.2f}°, after alignment "
        f"{pose['aligned angle (°)']:.2f}° (shift {pose['file shift (Å)']:.2f} → "
        f"{pose['aligned shift (Å)']:.2f} Å), regressed {pose['regressed angle (°)']:.2f}°.",
        "",
        "### Speed and what it costs",
        "",
        f"- elastic alignment: {two['align_images_per_s']:.2f} images/s "
        f"({two['aligned']} particles in {two['align_seconds']:.0f} s);",
        f"- regressor: {one_rate:.0f} images/s (inference, experiment I's test sets); its "
        f"training in experiment II is part of the run's {two['run_seconds']:.0f} s;",
        f"- plain HEMNMA on all {two['particles']} particles would take ~{hemnma_all:.0f} s; "
        f"DeepHEMNMA took {two['run_seconds']:.0f} s, for an amplitude error of "
        f"{two['errors']['inferred vs truth'][0]:.1f} on the regressed particles instead of "
        f"{two['errors']['aligned vs truth'][0]:.1f} on aligned ones; predicting the mean "
        f"amplitudes scores {baseline[0]:.1f}. At this scale and SNR the regressor has not "
        "learned to read the amplitudes from noisy images, so the speed is bought with all "
        "of the accuracy on the regressed particles; the noise-free rows of experiment I "
        "show what it gives where it learns.",
        "",
        "### The gaps to the seed, and why",
        "",
        "- **Pixels.** At a fixed per-pixel SNR the information an image carries about the "
        "amplitudes grows with its number of pixels. Our "
        f"{args.box}-px images at {args.pixel_size} Å/px hold 1/16 of the pixels of a "
        "128-px image (HEMNMA's usual size; the poster does not give the seed's), so the "
        "statistical error of a per-image fit can be up to 4× larger (σ ∝ 1/√pixels): our "
        f"elastic alignment's {two['errors']['aligned vs truth'][0]:.1f} against the seed's "
        "6.58 at SNR 0.1. "
        "Without noise the alignment is exact to 0.02 Å RMS (0.7 amplitude units; "
        "`tests/models/test_alignment.py`), so the gap is the data, not the optimiser.",
        "- **Training data and network.** The regressor here is a ResNet of 1/8 width with "
        f"one block per stage, trained on {int(0.9 * args.train)} images (experiment I) or "
        f"on {two['aligned'] - two['validation']} aligned ones (experiment II) for at most "
        f"{args.epochs} epochs on one CPU thread. It learns the noise-free cases (the error "
        "grows with in-plane rotation and shifts, as in the seed), but at SNR 0.1 with a "
        "0.5 µm CTF it stays close to the mean-predicting baseline (training longer does not "
        "help: 40 epochs without early stopping gave 65.4 on the first noisy row, measured "
        "once at the default scale): too few noisy examples "
        "for what the seed's network learned (the poster gives neither its training-set "
        "size nor its network's depth). `--train`, `--particles`, `--epochs`, `--width`, "
        "`--blocks` and `--box` scale the benchmark up on a GPU.",
        "- **Modes.** Ours come from a Cα network (15 Å cutoff) extended to all atoms; the "
        "seed's modes 7-9 from ElNemo on 4AKE. Same atoms and unit convention, similar but "
        "not identical shapes; each experiment simulates and scores with one set, so the "
        "comparison is internal to each.",
        "- **Poses.** The seed's experiment II does not say where HEMNMA's rigid alignment "
        f"started; ours starts from poses off by {pose['file angle (°)']:.2f}° and "
        f"{pose['file shift (Å)']:.2f} Å (median) and refines them with Gaussian priors of "
        f"about that size: shifts improve (to {pose['aligned shift (Å)']:.2f} Å), rotations "
        f"do not (to {pose['aligned angle (°)']:.2f}°): at 32 px and SNR 0.1 a rotation of "
        "under a degree is not determined better than that, and it trades with the "
        "amplitudes (the `pose_refine` section meets the same limit at 32 px).",
        "- **Atomic coordinates.** The seed's 0.9 Å does not say which comparison it "
        "belongs to; our aligned particles are at "
        f"{two['coordinate_error']['aligned vs truth']:.2f} Å RMS from the truth.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/seed004")
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--pixel-size", type=float, default=3.0)
    parser.add_argument("--train", type=int, default=3000, help="experiment I training set")
    parser.add_argument("--test", type=int, default=500, help="experiment I test set")
    parser.add_argument("--particles", type=int, default=2500, help="experiment II dataset")
    parser.add_argument("--align-fraction", type=float, default=0.4)
    parser.add_argument("--shift", type=float, default=5.0, help="Å, random shift range")
    parser.add_argument("--pose-error", type=float, default=1.0, help="degrees (exp. II)")
    parser.add_argument("--shift-error", type=float, default=0.5, help="Å (exp. II)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 1, 1, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-one", action="store_true", help="only experiment II")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the section from results.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results_path = workdir / "results.json"
    if args.report_only:
        saved = json.loads(results_path.read_text())
        text = markdown(saved["one"], saved["two"], argparse.Namespace(**saved["args"]))
        print(text)
        print("wrote", write_section("seed004", text, "results.md"))
        return
    setup = Setup(args.box, args.pixel_size)
    start = time.perf_counter()
    one = []
    if not args.skip_one:
        for i, case in enumerate(SEED_I):
            row = experiment_one(setup, case, args, seed=i)
            print(case, f"global {row['errors'][0]:.2f}", row["errors"][1], flush=True)
            one.append(row)
    elif results_path.is_file():
        one = json.loads(results_path.read_text())["one"]
    if (workdir / "run").exists():
        import shutil

        shutil.rmtree(workdir / "run")
    two = experiment_two(setup, workdir, args, seed=100)
    print(json.dumps(two, indent=1), flush=True)
    two["total_seconds"] = time.perf_counter() - start
    results_path.write_text(json.dumps({"one": one, "two": two, "args": vars(args)}, indent=1))
    print(f"total {two['total_seconds']:.0f} s")
    text = markdown(one, two, args)
    print(text)
    if not args.no_write:
        print("wrote", write_section("seed004", text, "results.md"))


if __name__ == "__main__":
    main()

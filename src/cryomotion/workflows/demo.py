"""The tour behind ``cryomotion demo``: simulate AdK opening, train the NMA autoencoder,
export the per-particle models, score them against the ground truth and analyse the run
(landscape, motions, states, report.html).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.analysis.run_analysis import analyze_run
from cryomotion.errors import InputError
from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.train.config import RunConfig
from cryomotion.train.results import export_models, load_run, particle_coords
from cryomotion.train.run import train_run

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    """The demo's dataset and training (lengths in Å)."""

    particles: int = 5000
    frames: int = 50
    distribution: str = "continuous"
    box: int = 64
    pixel_size: float = 1.5
    snr_db: float = -10.0
    training_box: int = 32  # Fourier-cropped on the fly (3 Å/px)
    modes: int = 16
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-4
    width: float = 0.25
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # auto
    exported: int = 20  # particles written to models.cif
    analyze: bool = True  # end with ``cryomotion analyze`` of the run (report.html)


@dataclass(frozen=True)
class DemoResult:
    """Where the outputs are, and how close the models came to the truth (Cα, Å)."""

    output: Path
    rmsd: np.ndarray  # (particles,) per-particle Cα-RMSD of the predicted model to its truth
    baseline: np.ndarray  # (particles,) the same for the (rigid) reference model
    is_test: np.ndarray
    seconds: dict[str, float]
    files: dict[str, Path]


def run_demo(
    output: str | Path, settings: DemoSettings | None = None, progress: bool = True
) -> DemoResult:
    """Simulate, train, export and score; everything goes under ``output``."""
    settings = settings or DemoSettings()
    output = Path(output).resolve()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"{output} exists and is not empty (choose a new output folder)")
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    reference, frames = adk_morph(settings.frames)
    simulation = SimulationConfig(
        n_particles=settings.particles,
        box=settings.box,
        pixel_size=settings.pixel_size,
        snr=10.0 ** (settings.snr_db / 10.0),
        distribution=settings.distribution,
        seed=settings.seed,
    )
    data = simulate_dataset(
        reference,
        frames,
        simulation,
        output / "data",
        command_line="cryomotion demo",
        progress=progress,
    )
    seconds["simulate"] = time.perf_counter() - start

    start = time.perf_counter()
    config = RunConfig(system="nma", reference=str(data["reference"]))
    config.data.particles = str(data["star"])
    config.data.box = settings.training_box if settings.training_box < settings.box else None
    config.model.latent_dim = settings.modes
    config.model.width = settings.width
    config.training.epochs = settings.epochs
    config.training.batch_size = settings.batch_size
    config.training.lr = settings.lr
    config.training.seed = settings.seed
    config.training.device = settings.device
    config.training.workers = settings.workers
    paths = train_run(
        config,
        output / "run",
        command_line="cryomotion demo",
        progress=progress,
    )
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    run = load_run(paths.root)
    models = export_models(
        run, output / "models.cif", np.arange(min(settings.exported, run.n_particles))
    )
    with np.load(data["ground_truth"], allow_pickle=False) as truth:
        true_models = truth["frame_coords"][truth["frame_index"][run.particle_index]]
    ca = run.reference.ca_index[run.reference.ca_index >= 0]
    predicted = particle_coords(run, np.arange(run.n_particles))[:, ca]
    true_ca = true_models[:, ca]
    rmsd = per_particle_rmsd(predicted, true_ca)
    baseline = per_particle_rmsd(np.broadcast_to(run.reference.coords[ca], true_ca.shape), true_ca)
    seconds["evaluate"] = time.perf_counter() - start
    files = {
        "data": output / "data",
        "run": paths.root,
        "models": models,
        "latents": paths.latents,
    }
    if settings.analyze:
        start = time.perf_counter()
        files["report"] = analyze_run(paths.root).report
        seconds["analyze"] = time.perf_counter() - start
    return DemoResult(
        output=output,
        rmsd=rmsd,
        baseline=baseline,
        is_test=run.is_test,
        seconds=seconds,
        files=files,
    )


def summary(result: DemoResult) -> str:
    """The demo's closing report, as printed by ``cryomotion demo``."""
    lines = ["", "Per-particle Cα-RMSD to the true conformation (Å, median [mean]):"]
    for name, mask in (
        ("all particles", np.ones_like(result.is_test)),
        ("test set", result.is_test),
    ):
        if mask.any():
            r, b = result.rmsd[mask], result.baseline[mask]
            lines.append(
                f"  {name:14s} NMA autoencoder {np.median(r):5.2f} [{r.mean():5.2f}]   "
                f"rigid reference {np.median(b):5.2f} [{b.mean():5.2f}]   "
                f"improved for {100 * np.mean(r < b):.0f} %"
            )
    total = sum(result.seconds.values())
    lines.append(
        "Time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
        + f" (total {math.floor(total / 60)} min {total % 60:.0f} s)"
    )
    lines.append("Outputs:")
    for name, path in result.files.items():
        lines.append(f"  {name:8s} {path}")
    if "report" in result.files:
        lines.append(f"Report: {result.files['report']}  (open it in a web browser)")
    else:
        lines.append(
            f"Next: cryomotion analyze {result.files['run']}   (latent space, motions, report)"
        )
    return "\n".join(lines)

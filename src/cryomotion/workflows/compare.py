"""Several systems trained on the same particles, analysed and compared on one page.

``run_compare`` trains each chosen system into ``DIR/<system>`` with the same split, seed
and epochs (or the same wall-clock budget), system by system; a system whose run finished
is reused and one that was interrupted is resumed, so an interrupted comparison continues
where it stopped. Each run is analysed as ``cryomotion analyze`` does (its own
``report.html``), then compared (``analysis.comparison``): held-out image misfit, the
agreement between systems' per-particle models, the landscapes on one scale, the motions,
the cost (training time, particles/s, peak memory) and, for simulated data, the accuracy
against the truth. Writes ``DIR/compare.html``, ``DIR/compare.tsv`` and ``DIR/cost.json``.

Each training runs as its own process (``cryomotion train``), so its peak memory is its
own and a failure in one system leaves the others' runs intact.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryomotion.analysis import plots
from cryomotion.analysis.comparison import (
    ca_atoms,
    heldout_misfit,
    pairwise_agreement,
    shared_landscape,
)
from cryomotion.analysis.latent import latent_pca, trajectory_along_pc
from cryomotion.analysis.report import Section, link, write_report
from cryomotion.analysis.run_analysis import AnalysisConfig, analyze_run
from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.systems.registry import SYSTEMS
from cryomotion.train.results import TrainedRun, decode_latents, load_run, particle_coords
from cryomotion.train.run_dir import RunPaths
from cryomotion.train.split import split_particles

log = logging.getLogger(__name__)

COST_FILE = "cost.json"


@dataclass
class CompareSettings:
    """What every system's training shares.

    systems : names from the registry (empty: every registered system).
    epochs : epochs per system; with ``budget_minutes`` the epochs that fit that
        wall-clock budget instead (measured on the system's first epoch).
    train_args : further ``cryomotion train`` flags given to every system (e.g. the
        particle-file flags ``--pixel-size``, ``--invert-data``).
    scored : held-out particles scored for the misfit and the agreement (at most).
    """

    systems: tuple[str, ...] = ()
    epochs: int = 10
    budget_minutes: float | None = None
    batch_size: int | None = None
    box: int | None = None
    seed: int = 0
    test_fraction: float = 0.1
    device: str = "auto"
    train_args: tuple[str, ...] = ()
    scored: int = 512
    landscape_particles: int = 2000

    def chosen(self) -> list[str]:
        names = list(self.systems) or list(SYSTEMS)
        unknown = [name for name in names if name not in SYSTEMS]
        if unknown:
            raise InputError(
                f"--systems: unknown {', '.join(unknown)} (expected names from "
                f"{', '.join(SYSTEMS)})"
            )
        if len(set(names)) != len(names):
            raise InputError(f"--systems {','.join(names)}: a system is named twice")
        return names


@dataclass
class CompareResult:
    """``report`` (compare.html), per-system ``rows`` (metric -> value) and ``agreement``
    ((a, b) -> median Cα-RMSD, Å)."""

    report: Path
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    agreement: dict[tuple[str, str], float] = field(default_factory=dict)


def _train_command(
    name: str, particles: str, model: str, run_dir: Path, settings: CompareSettings, epochs: int
) -> list[str]:
    command = [sys.executable, "-m", "cryomotion.cli.main", "train", name]
    if (run_dir / "config.yaml").is_file():
        return [*command, "-o", str(run_dir), "--resume", "--epochs", str(epochs), "--no-progress"]
    command += [particles, model, "-o", str(run_dir), "--epochs", str(epochs)]
    command += ["--seed", str(settings.seed), "--test-fraction", str(settings.test_fraction)]
    command += ["--device", settings.device, "--no-progress"]
    if settings.batch_size is not None:
        command += ["--batch-size", str(settings.batch_size)]
    if settings.box is not None:
        command += ["--box", str(settings.box)]
    return [*command, *settings.train_args]


def _train_process(command: list[str], name: str, run_dir: Path) -> float:
    """Run one training process and return its own peak resident memory (MiB)."""
    log.info("training %s: %s", name, " ".join(command))
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(command, stdout=devnull, stderr=subprocess.PIPE)
        stderr = process.stderr.read() if process.stderr is not None else b""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        raise InputError(
            f"training {name} into {run_dir} failed: {lines[-1] if lines else 'no output'} "
            "(run compare again to resume it)"
        )
    return usage.ru_maxrss / 1024.0  # Linux: KiB


def _metrics(run_dir: Path) -> dict[str, np.ndarray]:
    path = RunPaths(run_dir).metrics
    if not path.is_file():
        return {}
    table = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {name: np.atleast_1d(table[name]) for name in table.dtype.names}


def _read_costs(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        return {}
    try:
        costs = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not a cost file written by 'compare' ({err})") from None
    return costs if isinstance(costs, dict) else {}


def _write_json(path: Path, payload) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))


def train_systems(
    particles: str, model: str, output: Path, settings: CompareSettings
) -> dict[str, dict[str, float]]:
    """Train (or resume, or reuse) every chosen system; returns system -> cost numbers."""
    costs_path = output / COST_FILE
    costs = _read_costs(costs_path)
    for name in settings.chosen():
        run_dir = output / name
        if RunPaths(run_dir).latents.is_file() and name in costs:
            log.info("%s: finished run reused (%s)", name, run_dir)
            continue
        start = time.perf_counter()

        def train(epochs: int, name=name, run_dir=run_dir) -> float:
            command = _train_command(name, particles, model, run_dir, settings, epochs)
            return _train_process(command, name, run_dir)

        if settings.budget_minutes is None:
            peak = train(settings.epochs)
        else:
            # one epoch measures the system's pace; the budget then sets its epochs
            peak = train(1)
            seconds = float(_metrics(run_dir).get("epoch_seconds", np.array([np.nan]))[0])
            epochs = max(1, math.floor(60.0 * settings.budget_minutes / max(seconds, 1e-9)))
            log.info("%s: %.1f s per epoch -> %d epochs in the budget", name, seconds, epochs)
            if epochs > 1:
                peak = max(peak, train(epochs))
        metrics = _metrics(run_dir)
        costs[name] = {
            "epochs": float(len(metrics.get("epoch", []))),
            "training_seconds": float(np.nansum(metrics.get("epoch_seconds", [np.nan]))),
            "particles_per_s": float(np.nanmedian(metrics.get("particles_per_s", [np.nan]))),
            "peak_memory_mib": peak,
            "wall_seconds": time.perf_counter() - start,
        }
        _write_json(costs_path, costs)
    return costs


def _ca_models(run: TrainedRun, rows: np.ndarray) -> np.ndarray:
    """(n, Cα, 3) Å: the run's model of each particle at ``rows`` (rows of latents.npz)."""
    ca = ca_atoms(run)
    parts = [particle_coords(run, rows[i : i + 256])[:, ca] for i in range(0, len(rows), 256)]
    return np.concatenate(parts) if parts else np.zeros((0, len(ca), 3))


def _motion_ends(run: TrainedRun) -> tuple[np.ndarray, np.ndarray] | None:
    """Cα of the 5 % and 95 % ends of the run's PC1 trajectory (None for d = 0)."""
    if run.latents.shape[1] == 0:
        return None
    pca = latent_pca(run.latents, 1)
    frames = decode_latents(run, trajectory_along_pc(pca, 0, 2))
    ca = ca_atoms(run)
    return frames[0][ca], frames[-1][ca]


def run_compare(
    particles: str | Path,
    model: str | Path,
    output: str | Path,
    settings: CompareSettings | None = None,
    analysis: AnalysisConfig | None = None,
) -> CompareResult:
    """Train, analyse and compare the chosen systems (see the module docstring)."""
    settings = settings or CompareSettings()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = settings.chosen()
    costs = train_systems(str(particles), str(model), output, settings)

    runs = {name: load_run(output / name) for name in names}
    reports, numbers = {}, {}
    for name, run in runs.items():
        result = analyze_run(run.paths.root, config=analysis or AnalysisConfig(maps=False))
        reports[name], numbers[name] = result.report, result.numbers

    first = runs[names[0]]
    for run in runs.values():
        if not np.array_equal(run.particle_index, first.particle_index):
            raise InputError(
                f"{run.paths.root}: its particles differ from {first.paths.root}'s (expected "
                "runs of the same particles; remove the odd run and compare again)"
            )
    # held out: the split every system's training used (seed, --test-fraction); DeepHEMNMA
    # keeps its own validation particles instead, so it is scored on the same ones anyway
    rng = np.random.default_rng(settings.seed)
    _, test_rows = split_particles(first.n_particles, settings.test_fraction, settings.seed)
    if len(test_rows) == 0:
        test_rows = np.arange(first.n_particles)
    scored = np.sort(
        rng.choice(test_rows, size=min(settings.scored, len(test_rows)), replace=False)
    )
    scored_particles = first.particle_index[scored]
    landscape_rows = np.sort(
        rng.choice(
            first.n_particles,
            size=min(settings.landscape_particles, first.n_particles),
            replace=False,
        )
    )

    misfit = {name: heldout_misfit(run, scored_particles) for name, run in runs.items()}
    rigid = heldout_misfit(first, scored_particles, rigid=True)
    scored_models = {name: _ca_models(run, scored) for name, run in runs.items()}
    agreement = pairwise_agreement(scored_models)
    landscape_models = {name: _ca_models(run, landscape_rows) for name, run in runs.items()}
    reference_ca = first.reference.coords[ca_atoms(first)]
    landscape = shared_landscape(landscape_models, reference_ca)

    result = CompareResult(report=output / "compare.html")
    for name in names:
        cost = costs.get(name, {})
        row = {
            "heldout_misfit": float(np.mean(misfit[name])),
            "heldout_misfit_vs_rigid": float(np.mean(misfit[name] - rigid)),
            **{key: float(value) for key, value in cost.items()},
            **{
                key: float(numbers[name][key])
                for key in (
                    "median_rmsd",
                    "median_rmsd_reference",
                    "emd_rmsd",
                    "spread_predicted",
                    "spread_true",
                    "pc1_position_correlation",
                    "median_model_vs_data_fsc05_A",
                )
                if key in numbers[name]
            },
        }
        if "pc1_position_correlation" in row:  # a principal axis has no sign
            row["pc1_position_correlation"] = abs(row["pc1_position_correlation"])
        result.rows[name] = row
    result.agreement = {pair: float(np.median(values)) for pair, values in agreement.items()}
    _write_tables(output, result, names)
    _write_page(
        output, result, names, reports, runs, landscape, scored_models, agreement, scored, rigid
    )
    return result


COLUMNS = (
    ("epochs", "epochs", "{:.0f}"),
    ("training_seconds", "training time (s)", "{:.0f}"),
    ("particles_per_s", "particles/s", "{:.0f}"),
    ("peak_memory_mib", "peak memory (MiB)", "{:.0f}"),
    ("heldout_misfit", "held-out misfit (χ²/pixel)", "{:.5f}"),
    ("heldout_misfit_vs_rigid", "vs rigid reference (Δχ²/pixel)", "{:+.2e}"),
    ("median_rmsd", "median Cα-RMSD to truth (Å)", "{:.2f}"),
    ("median_rmsd_reference", "rigid reference (Å)", "{:.2f}"),
    ("emd_rmsd", "EMD-RMSD (Å)", "{:.2f}"),
    ("spread_predicted", "spread of the models (Å)", "{:.2f}"),
    ("spread_true", "spread of the true models (Å)", "{:.2f}"),
    ("pc1_position_correlation", "|r(PC1, true position)| (PC1's sign is arbitrary)", "{:.3f}"),
    ("median_model_vs_data_fsc05_A", "per-state model-vs-data FSC 0.5, median (Å)", "{:.2f}"),
)


def _present(result: CompareResult, names: list[str]) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(c[0] in result.rows[n] for n in names)]


def _cell(row: dict[str, float], key: str, form: str) -> str:
    value = row.get(key)
    return "–" if value is None or not math.isfinite(value) else form.format(value)


def _write_tables(output: Path, result: CompareResult, names: list[str]) -> None:
    columns = _present(result, names)
    lines = ["\t".join(["system", *(key for key, _, _ in columns)])]
    for name in names:
        row = result.rows[name]
        lines.append(
            "\t".join([name, *(repr(row.get(key, float("nan"))) for key, _, _ in columns)])
        )
    with atomic_path(output / "compare.tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _write_page(
    output, result, names, reports, runs, landscape, scored_models, agreement, scored, rigid
) -> None:
    columns = _present(result, names)
    header = ["system", *(label for _, label, _ in columns), "report"]
    rows = [
        [
            name,
            *(_cell(result.rows[name], key, form) for key, _, form in columns),
            link(reports[name], output, "report.html"),
        ]
        for name in names
    ]
    sections = [
        Section(
            "Systems",
            paragraphs=[
                f"{len(names)} systems trained on the same particles with the same split "
                f"and seed. Held-out misfit: each model rendered with its run's pose against "
                f"{len(scored)} held-out images normalised to unit noise (χ² per pixel; the "
                f"noise alone gives 1; the rigid reference model gives "
                f"{float(np.mean(rigid)):.5f}); lower is better, and a negative Δ means the "
                "images support the system's motion over no motion at all. Held out means "
                "not used to train shared parameters: per-particle values fitted to the image "
                "itself (3DFlex's latent table, DeepHEMNMA's aligned particles, a polish) "
                "are fitted on these images too, as they are at inference.",
            ],
            tables=[(header, rows)],
        )
    ]
    matrix_header = ["median Cα-RMSD (Å)", *names]
    matrix = []
    for a in names:
        cells = [a]
        for b in names:
            value = result.agreement.get((a, b), result.agreement.get((b, a)))
            cells.append("0" if a == b else f"{value:.2f}")
        matrix.append(cells)
    figures = []
    shared = {name: landscape.coordinates[name] for name in names}
    for (a, b), values in list(agreement.items())[:6]:
        xy = 0.5 * (landscape.project(scored_models[a], a) + landscape.project(scored_models[b], b))
        path = plots.disagreement_map(xy, values, output / f"disagreement_{a}_{b}", f"{a} vs {b}")
        figures.append((path, f"where {a} and {b} disagree"))
    sections.append(
        Section(
            "Agreement between systems",
            paragraphs=[
                "For each held-out particle, the Cα-RMSD between the models two systems give "
                "it (superposed); the table shows the medians. Where systems trained on the "
                "same images disagree, at least one of them is wrong there: the maps show "
                "where on the shared landscape that happens.",
            ],
            tables=[(matrix_header, matrix)],
            figures=figures,
        )
    )
    motions = {name: ends for name, run in runs.items() if (ends := _motion_ends(run)) is not None}
    motion_figures = []
    if motions:
        motion_figures.append(
            (
                plots.motion_panels(motions, output / "motions"),
                "each system's PC1 motion: 5 % end (grey), 95 % end coloured by displacement",
            )
        )
    motion_figures.append(
        (
            plots.shared_landscapes(shared, output / "landscapes", landscape.explained),
            "every system's particles on the principal components of all the systems' "
            "models together (one scale, Å; each system centred on its own mean model)",
        )
    )
    sections.append(Section("Motions and landscapes", figures=motion_figures))
    write_report(result.report, f"cryomotion compare: {', '.join(names)}", sections)

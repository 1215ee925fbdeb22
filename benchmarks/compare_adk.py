"""Every system on the same AdK particles: ``cryomotion compare`` across paths and noise.

Datasets: AdK open -> closed, a linear morph and a non-linear hinge path (the LID closing
before the NMP domain, ``simulate.paths.adk_hinge_path``), uniform over the path, at
−10, −20 and −30 dB, rescaled to unit noise variance (another program's units, not the
renderer's). Each dataset is given to ``workflows.compare.run_compare`` with every
registered system (or ``--systems``) at the same epochs, batch, training box and split;
the benchmark gathers ``compare.tsv`` of each into one table and one figure (median
per-particle Cα-RMSD to the truth per system, dataset by dataset, with the rigid
reference) in the ``compare_adk`` section of docs/results.md.

Usage::

    nohup python benchmarks/compare_adk.py --workdir /tmp/compare_adk > compare_adk.log 2>&1 &
    python benchmarks/compare_adk.py --particles 300 --epochs 1 --snr-db -10 \\
        --paths hinge --workdir /tmp/compare_smoke --no-write                 # smoke test
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import datetime
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cryomotion.analysis.run_analysis import AnalysisConfig  # noqa: E402
from cryomotion.simulate.adk import adk_morph  # noqa: E402
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset  # noqa: E402
from cryomotion.simulate.paths import adk_hinge_path  # noqa: E402
from cryomotion.systems.registry import SYSTEMS  # noqa: E402
from cryomotion.workflows.compare import CompareSettings, run_compare  # noqa: E402
from dataset_limit import dataset_limit  # noqa: E402
from information_limit import ceilings as ceilings_of  # noqa: E402
from report import DOCS, write_section  # noqa: E402
from snr_sweep import renormalise  # noqa: E402

PATHS = {"linear": adk_morph, "hinge": adk_hinge_path}
# systems whose latent space is a projection (normal modes, rigid segments), with a ceiling
CEILING_SYSTEMS = ("nma", "segments", "deephemnma")
PATH_NAMES = {"linear": "linear morph", "hinge": "hinge path (LID, then NMP)"}


def dataset(path: str, snr_db: float, args, folder: Path) -> dict[str, Path]:
    """Simulate (once) and rescale to unit noise; returns the unit-noise dataset's paths."""
    raw = folder / "raw"
    if not (raw / "ground_truth.npz").is_file():
        reference, frames = PATHS[path](args.frames)
        config = SimulationConfig(
            n_particles=args.particles, box=args.box, pixel_size=args.pixel_size,
            snr=float(10.0 ** (snr_db / 10.0)), distribution="uniform", seed=args.seed,
        )  # fmt: skip
        simulate_dataset(reference, frames, config, raw, progress=False)
    data = {
        "star": raw / "particles.star",
        "reference": raw / "reference.pdb",
        "ground_truth": raw / "ground_truth.npz",
    }
    return renormalise(data, "unit", folder / "unit")


def limit(folder: Path, particles: int, seed: int) -> dict[str, float]:
    """The information limit of the dataset in ``folder`` (``dataset_limit`` of its raw
    images), kept in ``folder/limit.json``."""
    return dataset_limit(folder / "raw", particles, seed, cache=folder / "limit.json")


def motion_scales(folder: Path, systems: list[str]) -> dict[str, float]:
    """Each system's motion scale α (``train.motion_scale``) from its run's latents.npz
    (NaN where the run has none)."""
    scales = {}
    for name in systems:
        path = folder / "compare" / name / "latents.npz"
        scales[name] = float("nan")
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if "motion_scale" in data.files:
                    scales[name] = float(data["motion_scale"])
    return scales


def ceilings(folder: Path, systems: list[str]) -> dict[str, float]:
    """Each run's deformation ceiling: the median over the particles of the Cα-RMSD of the
    closest conformation its latent space holds to the particle's true frame
    (``information_limit.ceiling_models``: normal modes and segments; NaN for decoders of
    every atom or a flow field, whose latent space is no projection)."""
    truth_path = folder / "raw" / "ground_truth.npz"
    with np.load(truth_path, allow_pickle=False) as truth:
        frame_index = truth["frame_index"]
    values = {}
    for name in systems:
        run_dir = folder / "compare" / name
        values[name] = float("nan")
        if (run_dir / "latents.npz").is_file() and name in CEILING_SYSTEMS:
            values[name] = float(np.median(ceilings_of(name, run_dir, truth_path)[frame_index]))
    return values


def read_table(path: Path) -> dict[str, dict[str, float]]:
    with open(path) as handle:
        return {
            row.pop("system"): {k: float(v) for k, v in row.items()}
            for row in csv.DictReader(handle, delimiter="\t")
        }


def figure(results: dict, systems: list[str], path: Path) -> Path:
    labels = list(results)
    x = np.arange(len(labels))
    width = 0.8 / (len(systems) + 1)
    fig, ax = plt.subplots(figsize=(1.4 * len(labels) + 2, 3.6))
    rigid = [next(iter(results[k].values())).get("median_rmsd_reference", np.nan) for k in labels]
    ax.bar(x - 0.4 + width / 2, rigid, width, color="0.7", label="rigid reference")
    for i, name in enumerate(systems):
        values = [results[k].get(name, {}).get("median_rmsd", np.nan) for k in labels]
        ax.bar(x - 0.4 + (i + 1.5) * width, values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("median Cα-RMSD to truth (Å)")
    ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def per_system_table(values: dict, labels: list[str], systems: list[str]) -> list[str]:
    """A markdown table of one number per dataset (``values[label][system]``, 2 decimals;
    – where missing or not finite)."""
    lines = ["| dataset | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
    for label in labels:
        row = values.get(label, {})
        cells = ["–" if not np.isfinite(row.get(n, np.nan)) else f"{row[n]:.2f}" for n in systems]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def markdown(
    results: dict,
    limits: dict,
    scales: dict,
    systems: list[str],
    args,
    seconds: float,
    ceiling: dict | None = None,
) -> str:
    lines = [
        "## compare_adk: every system on the same particles (`benchmarks/compare_adk.py`)",
        "",
        f"Measured {datetime.date.today().isoformat()} with `cryomotion compare` "
        f"({', '.join(systems)}): {args.particles} AdK particles per dataset, {args.box} px "
        f"at {args.pixel_size} Å/px, {args.frames} frames uniform over the path, rescaled to "
        f"unit noise variance; training box {args.training_box} px, {args.epochs} epochs, "
        f"batch {args.batch_size}, seed {args.seed}, test fraction {args.test_fraction}; "
        "2 CPU cores, each training its own process with the threads the `cryomotion` command "
        "chooses." + (f" Wall-clock {seconds / 60:.0f} min." if seconds >= 60 else ""),
        "",
        "Per dataset and system: median per-particle Cα-RMSD to the truth (Å) / EMD-RMSD "
        "(Å) / spread of the predicted models (median Cα-RMSD to their mean model, Å; a "
        "collapsed encoder gives ~0) / held-out misfit minus the rigid reference's (χ² per "
        "pixel in noise units; negative: the images prefer the system's models to no "
        "motion). Rigid: the reference model for every particle; true spread: the same "
        "spread for the true models; limit: the information limit (the median Cα-RMSD of "
        "the posterior mean of the true frames given each image, exact likelihood, "
        f"{args.limit_particles} particles; no method beats it on average).",
        "",
        "| dataset | rigid | limit | true spread | " + " | ".join(systems) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(systems),
    ]
    for label, table in results.items():
        rigid = next(iter(table.values())).get("median_rmsd_reference", float("nan"))
        cells = []
        for name in systems:
            row = table.get(name)
            if row is None:
                cells.append("–")
                continue
            cells.append(
                f"{row.get('median_rmsd', np.nan):.2f} / {row.get('emd_rmsd', np.nan):.2f} / "
                f"{row.get('spread_predicted', np.nan):.2f} / "
                f"{row.get('heldout_misfit_vs_rigid', np.nan):+.1e}"
            )
        spread = next(iter(table.values())).get("spread_true", float("nan"))
        bound = limits.get(label, {}).get("median_limit", float("nan"))
        lines.append(
            f"| {label} | {rigid:.2f} | {bound:.2f} | {spread:.2f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Motion scale α each run kept (`train.motion_scale`: the fraction of the learned "
        "motion its held-out images prefer, from 0, 0.25, 0.5, 0.75, 1; the models above "
        "are decoded with it; – where the system's points are not atoms):",
        "",
        *per_system_table(scales, list(results), systems),
    ]
    if ceiling:
        lines += [
            "",
            "Deformation ceiling of each run (the median over the particles of the Cα-RMSD, "
            "Å, of the closest conformation its latent space holds to the particle's true "
            "frame: the projection on its normal modes, or its learned segments each fitted "
            "rigidly; – for AtomVAE's and 3DFlex's decoders, whose latent space is no "
            "projection):",
            "",
            *per_system_table(ceiling, list(results), systems),
        ]
    lines += ["", "![compare_adk](figures/compare_adk.png)", ""]
    lines += ["What the table says, dataset by dataset (computed from it):", ""]
    for label, table in results.items():
        rigid = next(iter(table.values())).get("median_rmsd_reference", float("nan"))
        rmsd = {n: table[n].get("median_rmsd", np.nan) for n in systems if n in table}
        misfit = {n: table[n].get("heldout_misfit", np.nan) for n in systems if n in table}
        best = min(rmsd, key=lambda n: rmsd[n])
        picked = min(misfit, key=lambda n: misfit[n])
        worse = [n for n in systems if n in rmsd and rmsd[n] > rigid]
        lines.append(
            f"- {label}: most accurate {best} ({rmsd[best]:.2f} Å against rigid {rigid:.2f} Å); "
            f"the data alone (lowest held-out misfit) pick {picked} "
            f"({'the same' if picked == best else f'{rmsd[picked]:.2f} Å'}); "
            + (f"worse than rigid: {', '.join(worse)}." if worse else "none worse than rigid.")
        )
    lines.append("")
    lines.append("Cost per system (median over datasets): training seconds / particles/s / "
                 "peak memory (MiB).")  # fmt: skip
    lines += ["", "| system | training (s) | particles/s | peak memory (MiB) |",
              "|---|---:|---:|---:|"]  # fmt: skip
    for name in systems:
        rows = [t[name] for t in results.values() if name in t]
        med = {k: np.median([r.get(k, np.nan) for r in rows]) for k in
               ("training_seconds", "particles_per_s", "peak_memory_mib")}  # fmt: skip
        lines.append(f"| {name} | {med['training_seconds']:.0f} | "
                     f"{med['particles_per_s']:.0f} | {med['peak_memory_mib']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("compare_adk_work"))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--snr-db", type=float, nargs="+", default=[-10.0, -20.0, -30.0])
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=1.5)
    parser.add_argument("--training-box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit-particles", type=int, default=300, help="particles the limit is computed on"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="gather the datasets' compare.tsv already in --workdir; train nothing",
    )
    args = parser.parse_args()

    start = time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {}
    limits: dict[str, dict[str, float]] = {}
    scales: dict[str, dict[str, float]] = {}
    ceiling: dict[str, dict[str, float]] = {}
    for path in args.paths:
        for snr_db in args.snr_db:
            label = f"{path} {snr_db:g} dB"
            folder = args.workdir / f"{path}_{snr_db:g}dB"
            if args.report_only:
                if (folder / "compare" / "compare.tsv").is_file():
                    results[label] = read_table(folder / "compare" / "compare.tsv")
                    limits[label] = limit(folder, args.limit_particles, args.seed)
                    scales[label] = motion_scales(folder, args.systems)
                    ceiling[label] = ceilings(folder, args.systems)
                continue
            data = dataset(path, snr_db, args, folder)
            settings = CompareSettings(
                systems=tuple(args.systems), epochs=args.epochs, batch_size=args.batch_size,
                box=args.training_box, seed=args.seed, test_fraction=args.test_fraction,
                device="cpu",
            )  # fmt: skip
            print(f"{label}: comparing {', '.join(args.systems)}", flush=True)
            analysis = AnalysisConfig(maps=False, ground_truth=str(data["ground_truth"]))
            run_compare(data["star"], data["reference"], folder / "compare", settings, analysis)
            results[label] = read_table(folder / "compare" / "compare.tsv")
            limits[label] = limit(folder, args.limit_particles, args.seed)
            scales[label] = motion_scales(folder, args.systems)
            ceiling[label] = ceilings(folder, args.systems)
            print(label, results[label], limits[label], flush=True)
    text = markdown(
        results, limits, scales, args.systems, args, time.perf_counter() - start, ceiling
    )
    print(text)
    if not args.no_write:
        figure(results, args.systems, DOCS / "figures" / "compare_adk.png")
        print(write_section("compare_adk", text, document="results.md"))


if __name__ == "__main__":
    main()

"""Each system against the information limit on a non-linear path (issue 18).

Dataset: AdK open -> closed along ``simulate.paths.adk_hinge_path`` (the LID closes first,
then the NMP domain, each turning about its hinges: no straight line in coordinate space
follows it), frames drawn uniformly, 64 px at 1.5 Å/px, uniform poses, log-normal defocus
1 ± 0.3 µm, 2 Å shifts, white noise at -10, -20 and -30 dB, then every image divided by
the simulator's noise σ (unit noise variance, ``snr_sweep.renormalise``). nma (d modes of
open AdK) and segments (N segments) train as in ``snr_sweep`` (32-px Fourier crops, batch
32, Adam 3e-4, shifts from scratch); each run is then re-predicted with the per-particle
polish (``models.polish``; the run resumed with no more epochs and ``model.polish_steps``
set), so both the encoder's answer and the polished one are scored.

Reported per SNR and system (Cα, after superposition): the median per-particle RMSD to the
true frame; the EMD-RMSD of a subset (seed 002's metric); r and the spread (sd) of the
predicted LID–CORE distance against the true one (``seed001_adk.evaluate``); and beside
them

* **limit**: the median RMSD of the posterior mean over the true frames given each image
  (``analysis.information_limit``: every frame rendered with the particle's own pose and
  CTF, the exact Gaussian likelihood, the uniform frame prior), on a subset of particles;
  no method does better on average;
* **ceiling**: the best the system's latent space can do for the true frames — nma: each
  frame superposed onto the reference and projected onto the d modes; segments: each
  learned segment (hard assignment) superposed on its own onto the frame by its Cα atoms
  (``ceiling_models``), per particle by its true frame;
* **rigid**: the reference model itself.

Where a gap lies (``decomposition``; alone, for runs already trained, with
``--decompose``): the same exact inference with the images Fourier-cropped to the training
box, and with each frame replaced by the run's ceiling model (``ceiling_models``), at the
full and the training box: what the crop, the deformation and the inference each cost.

Results go to the ``information_limit`` section of docs/results.md.

Usage::

    python benchmarks/information_limit.py --workdir /tmp/limit
    python benchmarks/information_limit.py --particles 200 --epochs 1 --snr-db -10 \\
        --limit-particles 20 --workdir /tmp/limit_smoke --no-write          # smoke test
    python benchmarks/information_limit.py --workdir /tmp/limit --decompose  # trained runs
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from cryomotion.analysis.information_limit import information_limit
from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.simulate.paths import adk_hinge_path
from cryomotion.structure.superpose import kabsch, superpose
from cryomotion.systems.segments import MEMBERSHIP_FILE
from cryomotion.train.config import with_settings
from cryomotion.train.results import load_run
from cryomotion.train.run import train_run
from report import write_section
from seed001_adk import evaluate as evaluate_run
from snr_sweep import configure, renormalise

SYSTEMS = ("nma", "segments")
SECTION = "information_limit"  # the main table's section of docs/results.md


def simulate(snr_db: float, args, folder: Path) -> dict:
    """The hinge-path dataset at ``snr_db`` (raw, renderer units) and its unit-noise copy."""
    raw = folder / "data"
    if not (raw / "ground_truth.npz").is_file():
        reference, frames = adk_hinge_path(args.frames)
        config = SimulationConfig(
            n_particles=args.particles, box=args.box, pixel_size=args.pixel_size,
            snr=float(10.0 ** (snr_db / 10.0)), distribution="uniform", seed=args.seed,
        )  # fmt: skip
        simulate_dataset(reference, frames, config, raw, progress=False)
    paths = {
        "star": raw / "particles.star",
        "reference": raw / "reference.pdb",
        "ground_truth": raw / "ground_truth.npz",
    }
    unit = renormalise(paths, "unit", folder / "unit")
    return {**unit, "raw": raw}


def set_polish(config, polish: str) -> None:
    """``config.model``'s polish from ``polish`` =
    "STEPS:PRIOR[:CANDIDATES[:ESTIMATE[:DECODER]]]" ("0": none; PRIOR empirical by default,
    ESTIMATE map; DECODER the EM iterations of ``--polish-decoder``, 0 by default: they
    refit the run's decoder once, so every later polish of the run uses the refitted one)."""
    steps, prior, candidates, estimate, decoder = (polish.split(":") + [""] * 4)[:5]
    config.model.polish_steps = int(steps)
    config.model.polish_prior = prior or "empirical"
    config.model.polish_candidates = int(candidates or 0)
    config.model.polish_estimate = estimate or "map"
    config.model.polish_decoder_iterations = int(decoder or 0)


def train(system: str, data: dict, args, folder: Path, polish: str) -> float:
    """Train (if not done) or re-predict ``folder`` with the polish ``polish``
    (``set_polish``); seconds taken."""
    config = configure(system, data, args, "fitted", args.epochs)
    if system == "segments":
        config.deformation.segments = args.segments
    config = with_settings(config, args.set)
    set_polish(config, polish)
    config.model.polish_latent_step = args.polish_latent_step
    start = time.perf_counter()
    train_run(config, folder, resume=(folder / "config.yaml").is_file(), progress=False,
              command_line="benchmarks/information_limit.py")  # fmt: skip
    return time.perf_counter() - start


def ceiling_models(system: str, run_dir: Path, truth_path: Path) -> np.ndarray:
    """(frames, atoms, 3) Å: for each true frame the closest conformation the run's latent
    space holds, placed on the frame — normal modes (nma, deephemnma): the frame's
    projection on the run's modes (in the reference's frame, then superposed back onto the
    frame); segments: each learned segment (hard assignment) moved rigidly onto the frame
    by the fit of its Cα atoms. ``system`` is the run's system, for the message of one
    whose latent space is neither."""
    run = load_run(run_dir)
    with np.load(truth_path, allow_pickle=False) as truth:
        frames = truth["frame_coords"].astype(np.float64)
    reference = run.reference.coords.astype(np.float64)
    if hasattr(run.deformation, "basis"):  # normal modes (nma, deephemnma)
        # the run's basis: the ANM modes, or what they learned (not orthogonal then)
        with torch.no_grad():
            basis = run.deformation.basis().double().numpy()
        return projected_on_modes(basis, reference, frames)
    if not (run_dir / MEMBERSHIP_FILE).is_file():
        raise ValueError(f"{system} ({run_dir}): no modes or segments, no ceiling to project on")
    with np.load(run_dir / MEMBERSHIP_FILE, allow_pickle=False) as saved:
        segments = saved["membership"].argmax(axis=1)[run.reference.residue_index]
    is_ca = np.zeros(len(reference), dtype=bool)
    is_ca[run.reference.ca_index[run.reference.ca_index >= 0]] = True
    models = np.empty_like(frames)
    for k in np.unique(segments):
        part = segments == k
        fitted = part & is_ca if (part & is_ca).sum() >= 3 else part
        rotation, translation = kabsch(
            np.broadcast_to(reference[fitted], frames[:, fitted].shape), frames[:, fitted]
        )
        models[:, part] = np.einsum("fij,aj->fai", rotation, reference[part])
        models[:, part] += translation[:, None]
    return models


def projected_on_modes(basis: np.ndarray, reference: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(frames, atoms, 3) Å: each frame's displacement from ``reference`` (atoms, 3; after
    superposing the frame on it) projected on the modes ``basis`` (d, atoms, 3) by least
    squares, superposed back onto the frame."""
    modes = basis.reshape(len(basis), -1)
    aligned = superpose(frames, np.broadcast_to(reference, frames.shape))
    displacement = (aligned - reference).reshape(len(frames), -1)
    amplitudes = np.linalg.lstsq(modes.T, displacement.T, rcond=None)[0].T
    projected = reference + (amplitudes @ modes).reshape(frames.shape)
    return superpose(projected, frames)


def ceilings(system: str, run_dir: Path, truth_path: Path) -> np.ndarray:
    """(frames,) Cα-RMSD (Å) of the closest conformation the run's latent space holds."""
    models = ceiling_models(system, run_dir, truth_path)
    reference = load_run(run_dir).reference
    ca = reference.ca_index[reference.ca_index >= 0]
    with np.load(truth_path, allow_pickle=False) as truth:
        frames = truth["frame_coords"]
    return per_particle_rmsd(models[:, ca], frames[:, ca].astype(np.float64))


def decomposition(systems, folder: Path, data: dict, args, subset: np.ndarray) -> dict:
    """Where a gap to the limit can come from, by exact inference (the limit's) with less
    than the truth: the images Fourier-cropped to the training box; each frame replaced by
    the run's ceiling model (``ceiling_models``), at the full and the training box. Medians
    over the particles ``subset`` (Cα, Å)."""

    def median(**options) -> float:
        limit = information_limit(data["raw"], subset, progress=False, **options)
        return limit.summary()["median_limit"]

    result = {"crop": median(box=args.training_box)}
    for system in systems:
        models = ceiling_models(system, folder / "unit" / system, data["ground_truth"])
        result[system] = {
            "models": median(models=models),
            "models_crop": median(models=models, box=args.training_box),
        }
    return result


def score(system: str, run_dir: Path, data: dict, args) -> dict:
    result = evaluate_run(run_dir, data["ground_truth"], args)
    predicted, true = result["distances"]["LID"]
    return {
        "median_rmsd": result["median_rmsd"],
        "median_baseline": result["median_baseline"],
        "emd_rmsd": result["emd_rmsd"],
        "r_lid": result["r_lid"],
        "sd_pred": float(np.std(predicted)),
        "sd_true": float(np.std(true)),
    }


def add_dataset_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The options of the hinge-path dataset and its training runs, shared by the benchmarks
    that reuse them (``segments_collapse``, ``units_check``)."""
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/information_limit"))
    parser.add_argument("--particles", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=1.5)
    parser.add_argument("--training-box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nma-dim", type=int, default=16)
    parser.add_argument("--emd-particles", type=int, default=500)


def run(args) -> dict:
    results: dict = {}
    for snr in args.snr_db:
        folder = args.workdir / f"snr{snr:g}dB"
        data = simulate(snr, args, folder)
        with np.load(data["ground_truth"], allow_pickle=False) as truth:
            frame_index = truth["frame_index"]
        subset = np.random.default_rng(args.seed).choice(
            args.particles, min(args.limit_particles, args.particles), replace=False
        )
        start = time.perf_counter()
        limit = information_limit(data["raw"], np.sort(subset), progress=False)
        cell = {
            "limit": limit.summary(),
            "limit_seconds": time.perf_counter() - start,
            "limit_particles": len(subset),
        }
        print(snr, "limit", json.dumps(cell), flush=True)
        for system in args.systems:
            run_dir = folder / "unit" / system
            seconds = train(system, data, args, run_dir, "0")
            encoder = score(system, run_dir, data, args)
            print(snr, system, "encoder", json.dumps(encoder), flush=True)
            polished = {}
            for steps in args.polish:
                polish_seconds = train(system, data, args, run_dir, steps)
                polished[steps] = score(system, run_dir, data, args)
                polished[steps]["seconds"] = polish_seconds
                print(snr, system, f"polish {steps}", json.dumps(polished[steps]), flush=True)
            per_frame = ceilings(system, run_dir, data["ground_truth"])
            cell[system] = {
                "encoder": encoder,
                "train_seconds": seconds,
                "polished": polished,
                "ceiling": float(np.median(per_frame[frame_index])),
            }
        cell["decomposition"] = decomposition(args.systems, folder, data, args, np.sort(subset))
        results[snr] = cell
    return results


def from_log(log: Path, args) -> dict:
    """The results of a run of this script stopped early, rebuilt from the lines it printed
    (scores) and its run folders (ceilings, training times): the SNRs it finished."""
    results: dict = {}
    for line in log.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[2].startswith("{") and parts[1] not in args.systems:
            continue
        try:
            snr = float(parts[0])
        except ValueError:
            continue
        if parts[1] == "limit":
            results[snr] = json.loads(line.split(" ", 2)[2])
            continue
        system, rest = parts[1], line.split(" ", 2)[2]
        kind, _, payload = rest.partition(" {")
        value = json.loads("{" + payload)
        folder = args.workdir / f"snr{snr:g}dB"
        if kind == "encoder":
            with (folder / "unit" / system / "metrics.csv").open() as handle:
                last = handle.read().splitlines()[-1].split(",")
            header = (folder / "unit" / system / "metrics.csv").read_text().splitlines()[0]
            seconds = float(last[header.split(",").index("elapsed_seconds")])
            per_frame = ceilings(system, folder / "unit" / system, folder / "data" /
                                 "ground_truth.npz")  # fmt: skip
            with np.load(folder / "data" / "ground_truth.npz", allow_pickle=False) as truth:
                ceiling = float(np.median(per_frame[truth["frame_index"]]))
            results[snr][system] = {"encoder": value, "train_seconds": seconds,
                                    "polished": {}, "ceiling": ceiling}  # fmt: skip
        else:
            results[snr][system]["polished"][kind.removeprefix("polish ")] = value
    # only SNRs with every system scored
    return {k: v for k, v in results.items() if all(s in v for s in args.systems)}


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(results: dict, args, wall: float) -> str:
    load = os.getloadavg()
    given = "data.use_file_shifts=true" in args.set
    shifts = "the particles' shifts from the file" if given else "shifts from scratch"
    title = "Against the information limit on a non-linear path"
    heading = f"## {title} (`benchmarks/information_limit.py`)"
    if args.section != SECTION:
        flags = [f"--systems {' '.join(args.systems)}", f"--segments {args.segments}"]
        flags += [f"--epochs {args.epochs}", *(f"--set {value}" for value in args.set)]
        flags += [f"--polish {' '.join(args.polish)}"]
        heading = f"### `information_limit.py {' '.join(flags)}`"
    lines = [
        heading,
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, torch {torch.__version__}, 1 CPU thread "
        f"on a shared machine (load average {load[1]:.1f}; times are indicative only); "
        + (
            "the table rebuilt with `--from-log` from the output of calls run in parallel "
            "(one per SNR)."
            if args.from_log
            else f"the whole benchmark took {wall / 60:.0f} min."
        ),
        "",
        f"Set-up (a reduced scale): {args.particles:,} particles per SNR on AdK's hinge path "
        f"(`adk_hinge_path({args.frames})`: the LID closes, then the NMP domain, each "
        f"turning about its hinges), frames uniform, {args.box} px at {args.pixel_size} Å/px, "
        "uniform poses, defocus 1 ± 0.3 µm, 2 Å shifts, white noise, the images divided by "
        f"the noise σ (unit noise variance). Training: {args.training_box}-px Fourier crops, "
        f"batch {args.batch_size}, Adam {args.lr:g}, {args.epochs} epochs, encoder width "
        f"{args.width:g}, {shifts}; nma d = {args.nma_dim}, segments N = "
        f"{args.segments}"
        + (f" (with `--set {' '.join(args.set)}`)" if args.set else "")
        + ". Polish STEPS:PRIOR: Adam steps per particle on its latents and "
        f"shift (latent step {args.polish_latent_step:g} × the latent scale, shrinking to a "
        "tenth; `model.polish_steps`), at prediction, on the negative log posterior with the "
        "latents' prior a Gaussian fitted to the encoder's latents (empirical) or none "
        "(maximum likelihood); STEPS:PRIOR:K first moves each particle to the best of its own "
        "latents and K k-means centres of all particles' latents (a global search, "
        "`model.polish_candidates`); STEPS:PRIOR:K:mean starts instead from the posterior "
        "mean over the K centres, each weighted by its likelihood and the fraction of "
        "particles nearest it (`model.polish_estimate`; 0 steps: the posterior mean itself).",
        "",
        "Columns (Cα, Å, medians over the particles): *RMSD* to the particle's true frame; "
        "*EMD* the EMD-RMSD of a subset; *sd pred / true* the spread of the predicted and "
        "true LID–CORE distances (a collapsed encoder predicts ~0); *limit* the posterior "
        "mean of the true frames given each image (exact likelihood, computed on "
        f"{next(iter(results.values()))['limit_particles']} particles; no method beats it "
        "on average), with the posterior's width; *ceiling* the closest conformation the "
        "latent space holds (nma: projection on the d modes; segments: each learned "
        "segment fitted rigidly); *rigid* the reference itself.",
        "",
        "| SNR (dB) | system | polish | RMSD | EMD | r(LID–CORE) | sd pred / true "
        "| limit (width) | ceiling | rigid | prediction time |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for snr, cell in results.items():
        limit = cell["limit"]
        limit_text = f"{fmt(limit['median_limit'])} ({fmt(limit['median_posterior_width'])})"
        for system in args.systems:
            entry = cell[system]
            variants = [("0", entry["encoder"], entry["train_seconds"])]
            variants += [(s, r, r["seconds"]) for s, r in entry["polished"].items()]
            for steps, r, seconds in variants:
                when = (f"{seconds / 60:.1f} min (training)" if steps == "0"
                        else f"{seconds / 60:.1f} min")  # fmt: skip
                lines.append(
                    f"| {snr:g} | {system} | {steps} | {fmt(r['median_rmsd'])} | "
                    # r of models that do not vary (the reference for all) is undefined
                    f"{fmt(r['emd_rmsd'])} | {fmt(r['r_lid'] if r['sd_pred'] > 1e-6 else None)} | "
                    f"{fmt(r['sd_pred'])} / {fmt(r['sd_true'])} | {limit_text} | "
                    f"{fmt(entry['ceiling'])} | {fmt(r['median_baseline'])} | {when} |"
                )
    lines += ["", *observations(results, args)]
    if any("decomposition" in cell for cell in results.values()):
        lines += ["", *decomposition_table(results, args)]
    return "\n".join(lines)


def decomposition_table(results: dict, args) -> list[str]:
    """The ``decomposition`` of each SNR's gap as a table, with its reading."""
    lines = [
        "Where the gap lies: the same exact inference as the limit, given less than the "
        f"truth (medians over the limit's particles, Cα, Å): the images Fourier-cropped to "
        f"the {args.training_box}-px training box (with the cropped noise's σ); each frame "
        "replaced by the run's ceiling model (what its latent space holds closest to it), "
        "the posterior mean of those models scored against the true frames, at the full and "
        "the training box. No inference with that deformation and those images does better "
        "on average, whatever its encoder or polish.",
        "",
        f"| SNR (dB) | limit | limit at {args.training_box} px | system | ceiling "
        f"| over the ceiling models, {args.box} px | over them, {args.training_box} px "
        "| the system's best |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for snr, cell in results.items():
        parts = cell.get("decomposition")
        if not parts:
            continue
        for system in args.systems:
            entry = cell.get(system, {})
            scores = [entry["encoder"], *entry["polished"].values()] if "encoder" in entry else []
            best = min((r["median_rmsd"] for r in scores), default=None)
            lines.append(
                f"| {snr:g} | {fmt(cell['limit']['median_limit'])} | {fmt(parts['crop'])} | "
                f"{system} | {fmt(entry.get('ceiling'))} | {fmt(parts[system]['models'])} | "
                f"{fmt(parts[system]['models_crop'])} | {fmt(best)} |"
            )
    return lines


def decompose(args) -> dict:
    """``decomposition`` for the runs already in ``args.workdir`` (no training), beside the
    scores of its results.json where there is one."""
    saved = args.workdir / "results.json"
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    results = {}
    for snr in args.snr_db:
        folder = args.workdir / f"snr{snr:g}dB"
        data = simulate(snr, args, folder)
        subset = np.random.default_rng(args.seed).choice(
            args.particles, min(args.limit_particles, args.particles), replace=False
        )
        cell = {k: v for k, v in previous.get(str(snr), {}).items() if k in args.systems}
        cell["limit"] = information_limit(data["raw"], np.sort(subset), progress=False).summary()
        with np.load(data["ground_truth"], allow_pickle=False) as truth:
            frame_index = truth["frame_index"]
        for system in args.systems:
            per_frame = ceilings(system, folder / "unit" / system, data["ground_truth"])
            cell.setdefault(system, {})["ceiling"] = float(np.median(per_frame[frame_index]))
        cell["decomposition"] = decomposition(args.systems, folder, data, args, np.sort(subset))
        print(snr, "decomposition", json.dumps(cell["decomposition"]), flush=True)
        results[snr] = cell
    return results


def observations(results: dict, args) -> list[str]:
    """What the table says, computed from it."""
    lines = []
    targets = {-10.0: 0.5, -20.0: 1.0}
    for snr, cell in results.items():
        limit = cell["limit"]["median_limit"]
        best = {}
        for system in args.systems:
            entry = cell[system]
            options = [(entry["encoder"]["median_rmsd"], system, "0")]
            options += [(r["median_rmsd"], system, s) for s, r in entry["polished"].items()]
            best[system] = min(options)
        value, system, steps = min(best.values())
        rigid = cell[args.systems[0]]["encoder"]["median_baseline"]
        # within 0.001 Å of the reference is the reference itself (float32 decoding)
        worse = [f"{s} ({fmt(v)} Å)" for s, (v, _, _) in best.items() if v > rigid + 1e-3]
        gain = {
            s: cell[s]["encoder"]["median_rmsd"]
            - min(
                [cell[s]["encoder"]["median_rmsd"]]
                + [r["median_rmsd"] for r in cell[s]["polished"].values()]
            )
            for s in args.systems
        }
        gap = {s: cell[s]["encoder"]["median_rmsd"] - limit for s in args.systems}
        closed = ", ".join(f"{s} {fmt(gain[s])} Å of its {fmt(gap[s])} Å gap" for s in args.systems)
        text = (
            f"- {snr:g} dB: best {system} (polish {steps}) at {fmt(value)} Å against the limit "
            f"{fmt(limit)} Å (gap {fmt(value - limit)} Å"
        )
        if snr in targets:
            met = value - limit <= targets[snr]
            text += f"; target within {targets[snr]:g} Å: {'met' if met else '**not met**'}"
        text += f"); the polish closed {closed}; "
        level = [s for s, (v, _, _) in best.items() if abs(v - rigid) < 1e-3]
        text += ("worse than the rigid reference: " + ", ".join(worse)) if worse else (
            "no system worse than the rigid reference"
            + (f" ({', '.join(level)} returned it: motion scale 0)" if level else ""))  # fmt: skip
        lines.append(text + ".")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_arguments(parser, epochs=12)
    parser.add_argument("--snr-db", type=float, nargs="+", default=[-10.0, -20.0, -30.0])
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument(
        "--polish", nargs="*", default=["30:empirical", "30:none"],
        help="polishes to re-predict with, STEPS:PRIOR[:CANDIDATES[:ESTIMATE[:DECODER]]] "
        "(prior empirical or none; CANDIDATES k-means starts searched first; ESTIMATE map, "
        "the best of them, or mean, the posterior mean over them; DECODER EM iterations "
        "refitting the decoder first, --polish-decoder: give it last, it changes the run)",
    )  # fmt: skip
    parser.add_argument("--polish-latent-step", type=float, default=0.05)
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="a setting for every run, as `cryomotion train --set` (e.g. "
        "deformation.modes_lr=3e-5 with --systems nma)",
    )  # fmt: skip
    parser.add_argument("--limit-particles", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    parser.add_argument(
        "--section", default=SECTION,
        help="the section of docs/results.md to write (another name: a table of its own, "
        "e.g. for one configuration's settings, beside the main one)",
    )  # fmt: skip
    parser.add_argument(
        "--from-log", type=Path, help="rebuild the table from a stopped run's printed output"
    )
    parser.add_argument(
        "--decompose", action="store_true",
        help="only print where each gap lies (decomposition) for the runs in --workdir",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.decompose:
        print("\n".join(decomposition_table(decompose(args), args)))
        return
    start = time.perf_counter()
    results = from_log(args.from_log, args) if args.from_log else run(args)
    text = markdown(results, args, time.perf_counter() - start)
    print(text)
    (args.workdir / "results.json").write_text(json.dumps(
        {str(k): v for k, v in results.items()}, default=float, indent=1))  # fmt: skip
    if not args.no_write:
        print("wrote", write_section(args.section, text, "results.md"))


if __name__ == "__main__":
    main()

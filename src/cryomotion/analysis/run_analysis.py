"""Analysis of a finished training run: landscape, states, motions, maps, star subsets, report."""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from cryomotion.analysis import plots
from cryomotion.analysis.alignment import alignment_section
from cryomotion.analysis.latent import (
    density_maxima,
    kmeans_states,
    latent_pca,
    trajectory_along_pc,
)
from cryomotion.analysis.maps import atomic_potential_map, write_map
from cryomotion.analysis.metrics import emd_rmsd, pearson, per_particle_rmsd, spread_about_mean
from cryomotion.analysis.report import Section, link, write_report
from cryomotion.analysis.segmentation import (
    hard_segments,
    segment_ranges,
    write_segmentation_products,
)
from cryomotion.atomic_write import atomic_path
from cryomotion.data.poses import resolve_rotation_center
from cryomotion.data.star import write_star_subset
from cryomotion.errors import InputError
from cryomotion.npz_arrays import INTEGER, Array, load_arrays, missing_keys
from cryomotion.structure.io import write_models
from cryomotion.train.results import (
    TrainedRun,
    decode_latents,
    load_run,
    particle_coords,
    run_particles,
)

log = logging.getLogger(__name__)


@dataclass
class AnalysisConfig:
    """Settings of ``cryomotion analyze``."""

    n_pcs: int = 3  # principal components to sweep
    n_states: int = 8  # k-means states
    n_frames: int = 10  # frames per PC trajectory
    use_umap: bool = False  # needs the extra `umap-learn`
    maps: bool = True  # MRC maps of the state models
    reconstruct: bool = False  # reconstruct each state from the data; model-vs-data FSC
    ground_truth: str | None = None  # ground_truth.npz; default: beside the particle file
    seed: int = 0
    n_emd: int = 300  # particles subsampled for the EMD-RMSD


@dataclass
class AnalysisResult:
    """Paths written and the headline numbers."""

    output_dir: Path
    report: Path
    files: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)


def _decode(run: TrainedRun, latents: np.ndarray) -> np.ndarray:
    return decode_latents(run, latents).astype(np.float64)


def _read_metrics(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        try:
            columns[key] = np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])
        except ValueError:
            continue
    return columns


def _find_ground_truth(run: TrainedRun, explicit: str | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"{path}: no such ground-truth file (expected ground_truth.npz)")
        return path
    candidate = Path(run.config.data.particles).parent / "ground_truth.npz"
    return candidate if candidate.is_file() else None


def _chimerax_script(path: Path, trajectories: list[Path], states: list[Path], maps: list[Path]):
    lines = ["# Open in ChimeraX: open analysis.cxc", "close session"]
    model = 0
    for trajectory in trajectories:
        model += 1
        lines.append(f"open {trajectory.name} coordsets true")
    for state in states:
        model += 1
        lines.append(f"open {state.name}")
    for volume in maps:
        model += 1
        lines.append(f"open {volume.name}")
        lines.append(f"volume #{model} style surface level 0.5 transparency 0.5")
    lines += ["cartoon", "hide atoms", "color bychain", "view"]
    if trajectories:
        # A slider for the PC1 trajectory, then play it once.
        lines.append("coordset slider #1")
        lines.append("coordset #1 1,")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def analyze_run(
    run_dir: str | Path,
    output_dir: str | Path | None = None,
    config: AnalysisConfig | None = None,
    latents_path: str | Path | None = None,
) -> AnalysisResult:
    """Analyse the run in ``run_dir``; write everything into ``output_dir`` (default
    RUN/analysis) and return the paths and headline numbers. ``latents_path``: the run's
    particles' latents from another file than its own (a polish at inference,
    ``train.run.polish_run``)."""
    config = config or AnalysisConfig()
    umap = None
    if config.use_umap:  # before any work: a missing extra fails at once
        try:
            import umap  # noqa: PLC0415
        except ImportError:
            raise InputError(
                "--umap needs the optional dependency umap-learn (pip install 'cryomotion[umap]')"
            ) from None
    run = load_run(run_dir, latents_path)
    out = Path(output_dir) if output_dir else run.paths.root / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result = AnalysisResult(output_dir=out, report=out / "report.html")
    figures: list[tuple[Path, str]] = []
    sections: list[Section] = []
    latents = run.latents
    d = latents.shape[1]

    settings = yaml.safe_load(run.paths.config.read_text())
    sections.append(
        Section(
            "Run",
            paragraphs=[
                f"System {run.config.system}, latent dimension {d}, {run.n_particles} particles "
                f"({int(run.is_test.sum())} held out for testing).",
            ]
            + (
                [
                    f"Latents polished at inference: {latents_path} (its log beside it), "
                    "instead of the run's own latents.npz."
                ]
                if latents_path is not None
                else []
            ),
            preformatted=yaml.safe_dump(settings, sort_keys=False),
        )
    )

    metrics = _read_metrics(run.paths.metrics)
    if metrics:
        figures_training = [(plots.training_curves(metrics, out / "training_curves"), "training")]
        sections.append(Section("Training", figures=figures_training))

    # Particle table, for star subsets and maps at the data's pixel size.
    table = run_particles(run.config)
    pixel_size = float(np.median(table.pixel_size))
    box = table.box_size

    state_rows: list[list[str]] = []
    trajectory_files: list[Path] = []
    state_files: list[Path] = []
    map_files: list[Path] = []
    motion_figures: list[tuple[Path, str]] = []
    if d == 0:
        sections.append(
            Section("Landscape", paragraphs=["Rigid run (d = 0): no conformational latent."])
        )
        labels = np.zeros(run.n_particles, dtype=np.int64)
    else:
        pca = latent_pca(latents, config.n_pcs)
        result.numbers["pc1_explained_variance"] = float(pca.explained_variance_ratio[0])
        np.savez(
            out / "latent_pca.npz",
            coordinates=pca.coordinates,
            components=pca.components,
            mean=pca.mean,
            explained_variance_ratio=pca.explained_variance_ratio,
            particle_index=run.particle_index,
        )
        figures.append(
            (
                plots.latent_scatter(
                    pca.coordinates, out / "latent_pca", pca.explained_variance_ratio
                ),
                "latent PC1/PC2",
            )
        )
        if umap is not None:
            embedding = umap.UMAP(random_state=config.seed).fit_transform(latents)
            np.save(out / "umap.npy", embedding)
            figures.append((plots.latent_scatter(embedding, out / "latent_umap"), "UMAP"))
        grid, density, maxima = density_maxima(pca.coordinates[:, 0])
        figures.append(
            (
                plots.pc_histogram(
                    pca.coordinates[:, 0], grid, density, maxima, out / "pc1_density"
                ),
                "PC1 density and its maxima",
            )
        )
        # Trajectories along each PC.
        for pc in range(pca.components.shape[0]):
            frames = _decode(run, trajectory_along_pc(pca, pc, config.n_frames))
            path = write_models(out / f"pc{pc + 1}_trajectory.pdb", run.reference, frames)
            trajectory_files.append(path)
            if pc == 0:
                ca = run.reference.ca_index[run.reference.ca_index >= 0]
                motion = plots.motion_picture(frames[0][ca], frames[-1][ca], out / "pc1_motion")
                motion_figures.append(
                    (motion, "the motion along PC1: its 5 % end (grey) and 95 % end, "
                     "coloured by displacement")
                )  # fmt: skip
        # Models at the density maxima of PC1.
        pc_at_maxima = np.zeros((len(maxima), pca.components.shape[0]))
        pc_at_maxima[:, 0] = maxima
        maxima_models = _decode(run, pca.to_latent(pc_at_maxima))
        for i, coords in enumerate(maxima_models):
            state_files.append(
                write_models(out / f"pc1_maximum_{i + 1}.pdb", run.reference, coords)
            )
        # k-means states.
        labels, centers, _ = kmeans_states(latents, config.n_states, config.seed)
        center_models = _decode(run, centers)
        for k, coords in enumerate(center_models):
            state_files.append(write_models(out / f"state_{k + 1}.pdb", run.reference, coords))
        result.numbers["n_pc1_maxima"] = float(len(maxima))

    # States back to RELION and index lists.
    n_states = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_states)
    has_star = table.star is not None
    center = resolve_rotation_center(
        run.config.data.rotation_center, run.reference, box, pixel_size
    )
    origin = center - (box // 2) * pixel_size
    model_maps: dict[int, np.ndarray] = {}
    for k in range(n_states):
        members = run.particle_index[labels == k]
        index_path = out / f"state_{k + 1}_indices.txt"
        with atomic_path(index_path) as tmp:
            np.savetxt(tmp, members, fmt="%d")
        row = [str(k + 1), str(int(counts[k])), link(index_path, out)]
        if has_star:
            star_path = write_star_subset(out / f"particles_state_{k + 1}.star", table, members)
            row.append(link(star_path, out))
        if d > 0:
            row.append(link(out / f"state_{k + 1}.pdb", out))
            if config.maps:
                coords = center_models[k]
                volume = atomic_potential_map(
                    coords, run.reference.elements, box, pixel_size, origin=origin
                )
                model_maps[k] = volume
                map_path = write_map(out / f"state_{k + 1}.mrc", volume, pixel_size, origin)
                map_files.append(map_path)
                row.append(link(map_path, out))
        state_rows.append(row)
    if d > 0:
        figures.append((plots.state_counts(counts, out / "state_counts"), "particles per state"))
    header = ["state", "particles", "indices"] + (["star"] if has_star else [])
    header += ["model"] if d > 0 else []
    header += ["map"] if d > 0 and config.maps else []
    sections.append(Section("Landscape", figures=figures))
    sections.append(
        Section(
            "States",
            paragraphs=[
                "k-means states of the latents; each state's model is decoded from its centre. "
                "Reconstruct each star subset independently to check for model bias."
            ],
            tables=[(header, state_rows)],
        )
    )
    if config.reconstruct:
        sections.append(
            _reconstruction_section(
                run, table, labels, center_models if d > 0 else None, model_maps, origin,
                out, config, result,
            )
        )  # fmt: skip
    if trajectory_files or state_files:
        cxc = _chimerax_script(out / "analysis.cxc", trajectory_files, state_files, map_files)
        rows = [[link(p, out)] for p in [*trajectory_files, *state_files, cxc]]
        sections.append(
            Section(
                "Motions",
                paragraphs=[
                    f"Trajectories sweep each PC across the particles' 5-95 % range in "
                    f"{config.n_frames} frames. In ChimeraX: open analysis.cxc."
                ],
                tables=[(["file"], rows)],
                figures=motion_figures,
            )
        )
        result.files["chimerax"] = cxc

    segmentation = _segmentation_section(run, out)
    if segmentation is not None:
        sections.append(segmentation)
    alignment = alignment_section(run, out)  # aligned vs regressed particles (DeepHEMNMA)
    if alignment is not None:
        sections.append(alignment)

    truth_path = _find_ground_truth(run, config.ground_truth)
    truth = None
    if truth_path is not None:
        truth = _read_ground_truth(run, truth_path, explicit=bool(config.ground_truth))
    if truth is not None:
        sections.append(_ground_truth_section(run, truth, out, config, result, latents))

    result.files.update({p.stem: p for p in [*trajectory_files, *state_files, *map_files]})
    write_report(result.report, f"cryomotion analysis: {run.paths.root.name}", sections)
    return result


RECONSTRUCTION_HEADER = [
    "state",
    "particles",
    "model-vs-data FSC 0.5 (Å)",
    "half-map FSC 0.143 (Å)",
    "data map",
    "curves",
]


def _reconstruction_section(
    run: TrainedRun, table, labels, center_models, model_maps, origin, out, config, result
) -> Section:
    """Reconstruct each state's particles from the data (half sets) on the grid of its
    model's map and compare the two: the model-vs-data FSC, the check of model bias.

    Uses the particle table and each state's member indices, so it works whatever format
    the particles came in (.star, .cs, cryoDRGN .pkl). A rigid run (no states' models)
    compares with the reference model."""
    from cryomotion.analysis.reconstruction import model_vs_data_fsc, split_halves

    box = table.box_size
    pixel_size = float(np.median(table.pixel_size))
    rows, figures, resolutions = [], [], []
    progress = sys.stderr.isatty()
    for k in range(int(labels.max()) + 1):
        members = run.particle_index[labels == k]
        name = f"state_{k + 1}"
        halves = np.bincount(split_halves(table, members, config.seed), minlength=2)
        if halves.min() == 0:
            rows.append([str(k + 1), str(len(members)), "too few particles for two half sets",
                         "", "", ""])  # fmt: skip
            continue
        volume = model_maps.get(k)
        if volume is None:
            coords = run.reference.coords if center_models is None else center_models[k]
            volume = atomic_potential_map(
                coords, run.reference.elements, box, pixel_size, origin=origin
            )
        entry = model_vs_data_fsc(
            table, volume, pixel_size, origin, indices=members, output_dir=out, name=name,
            title=f"state {k + 1}: model vs data ({len(members)} particles)",
            invert_contrast=run.config.data.invert_data, seed=config.seed, progress=progress,
        )  # fmt: skip
        files = entry["files"]
        result.files.update(
            {f"{name}_data": files["map"], f"{name}_fsc": files["fsc_tsv"],
             f"{name}_fsc_png": files["fsc_png"]}
        )  # fmt: skip
        resolutions.append(entry["resolution_model_0.5"])
        rows.append([
            str(k + 1), str(entry["particles"]), f"{entry['resolution_model_0.5']:.2f}",
            f"{entry['resolution_half_0.143']:.2f}", link(files["map"], out),
            link(files["fsc_tsv"], out),
        ])  # fmt: skip
        figures.append((files["fsc_png"], f"state {k + 1}: model-vs-data and half-map FSC"))
    if resolutions:
        result.numbers["median_model_vs_data_fsc05_A"] = float(np.median(resolutions))
    nyquist = 2 * pixel_size
    return Section(
        "Model vs data",
        paragraphs=[
            "Each state's particles reconstructed from the images with their poses and CTFs "
            "(direct Fourier inversion, two half sets, Wiener term from the half sets' SSNR) "
            "on the grid of the state's model map, and compared with it: the model-vs-data "
            "FSC (0.5 threshold) checks that the model is supported by the data, the "
            "half-map FSC (0.143) says how far the data themselves go. A model-vs-data "
            "resolution much worse than the half-map one points to model bias or to "
            f"heterogeneity within the state. Nyquist: {nyquist:.2f} Å (a curve that never "
            "crosses its threshold is reported at Nyquist).",
        ],
        tables=[(RECONSTRUCTION_HEADER, rows)],
        figures=figures,
    )


def _segmentation_section(run: TrainedRun, out: Path) -> Section | None:
    """The learned segmentation of a run that has one (the segments system), else None."""
    root = run.paths.root
    membership_path = root / "membership.npz"
    if not membership_path.is_file():
        return None
    membership = load_arrays(
        membership_path,
        {"membership": ("residues", "segments")},
        what="the learned segmentation written by 'cryomotion train segments'",
    )["membership"]
    if membership.shape[0] != run.reference.n_residues or membership.shape[1] == 0:
        raise InputError(
            f"{membership_path}: membership holds {membership.shape[0]} residues x "
            f"{membership.shape[1]} segments, the run's reference model "
            f"{run.reference.n_residues} residues (expected the same, and segments ≥ 1)"
        )
    segments = hard_segments(membership)
    ranges = segment_ranges(run.reference, segments)
    if not (root / "segments.tsv").is_file():  # a run trained through the library alone
        write_segmentation_products(run.reference, membership, out)
        root = out
    rows = [
        [
            str(r.segment),
            r.chain or "-",
            str(r.first_residue),
            str(r.last_residue),
            str(r.n_residues),
        ]  # fmt: skip
        for r in ranges
    ]
    files = [p for p in sorted(root.glob("segmentation.*")) if p.suffix in (".pdb", ".cif")]
    files += [p for p in (root / "segments.tsv",) if p.is_file()]
    plot = root / "segmentation.png"
    used = len(np.unique(segments))
    return Section(
        "Segmentation",
        paragraphs=[
            f"{used} of {membership.shape[1]} segments hold residues (each residue in the "
            f"segment of its largest membership); {len(ranges)} contiguous ranges. The "
            "model file carries the segment index + 1 in its B-factor column: in ChimeraX, "
            "color bfactor palette paired.",
            "Files: " + ", ".join(link(p, out) for p in files),
        ],
        tables=[(["segment", "chain", "first residue", "last residue", "residues"], rows)],
        figures=[(plot, "membership of each residue")] if plot.is_file() else [],
    )


GROUND_TRUTH_ARRAYS = {
    "frame_index": Array(("particles",), INTEGER),  # the frame each particle was drawn from
    "frame_position": ("particles",),  # that frame's position along the trajectory
    "frame_coords": ("frames", "atoms", 3),  # the frames' models, Å
}


@dataclass(frozen=True)
class GroundTruth:
    """The true model and trajectory position of each particle of a run."""

    path: Path
    models: np.ndarray  # (particles, atoms, 3) Å
    position: np.ndarray  # (particles,)


def _read_ground_truth(run: TrainedRun, path: Path, explicit: bool) -> GroundTruth | None:
    """The ground truth of ``run``'s particles from a ``ground_truth.npz`` written by
    ``cryomotion simulate``. A file found beside the particles without the arrays this
    needs (e.g. another simulator's) is skipped with a warning; one given explicitly is
    an ``InputError``, as are object arrays and arrays that do not fit the run."""
    missing = missing_keys(path, GROUND_TRUTH_ARRAYS)
    if missing:
        message = (
            f"{path}: no array{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(expected a ground_truth.npz written by 'cryomotion simulate')"
        )
        if explicit:
            raise InputError(message)
        log.warning("%s; the comparison with the ground truth is skipped", message)
        return None
    truth = load_arrays(path, GROUND_TRUTH_ARRAYS, what="a ground_truth.npz from 'simulate'")
    frame_index, frames = truth["frame_index"].astype(np.int64), truth["frame_coords"]
    if frames.shape[1] != run.reference.n_atoms:
        raise InputError(
            f"{path}: frames hold {frames.shape[1]} atoms, the run's reference model "
            f"{run.reference.n_atoms} (expected the same atoms)"
        )
    needed = int(run.particle_index.max()) + 1 if run.n_particles else 0
    if len(frame_index) < needed:
        raise InputError(
            f"{path}: ground truth for {len(frame_index)} particles, the run has particle "
            f"index {needed - 1} (expected one entry per particle of the dataset)"
        )
    if len(frame_index) and (frame_index.min() < 0 or frame_index.max() >= len(frames)):
        raise InputError(
            f"{path}: frame_index outside the {len(frames)} frames of frame_coords "
            f"(expected indices in 0..{len(frames) - 1})"
        )
    index = run.particle_index
    return GroundTruth(path, frames[frame_index[index]], truth["frame_position"][index])


def _ground_truth_section(run, truth: GroundTruth, out, config, result, latents) -> Section:
    truth_path, position, true_models = truth.path, truth.position, truth.models
    predicted = particle_coords(run, np.arange(run.n_particles))
    ca = run.reference.ca_index[run.reference.ca_index >= 0]
    rmsd = per_particle_rmsd(predicted[:, ca], true_models[:, ca])
    baseline = per_particle_rmsd(
        np.broadcast_to(run.reference.coords[ca], true_models[:, ca].shape), true_models[:, ca]
    )
    rng = np.random.default_rng(config.seed)
    subset = rng.choice(run.n_particles, size=min(config.n_emd, run.n_particles), replace=False)
    emd = emd_rmsd(predicted[subset][:, ca], true_models[subset][:, ca])
    spread = spread_about_mean(predicted[:, ca]), spread_about_mean(true_models[:, ca])
    result.numbers.update(
        median_rmsd=float(np.median(rmsd)),
        median_rmsd_reference=float(np.median(baseline)),
        emd_rmsd=emd,
        spread_predicted=spread[0],
        spread_true=spread[1],
    )
    figures = [(plots.rmsd_histogram(rmsd, out / "rmsd_to_truth", baseline), "Cα-RMSD to truth")]
    rows = [
        ["median per-particle Cα-RMSD, predicted (Å)", f"{np.median(rmsd):.2f}"],
        ["median per-particle Cα-RMSD, reference model (Å)", f"{np.median(baseline):.2f}"],
        [f"EMD-RMSD on {len(subset)} particles (Å)", f"{emd:.2f}"],
        [
            "spread: median Cα-RMSD to the mean model, predicted / true (Å)",
            f"{spread[0]:.2f} / {spread[1]:.2f}",
        ],
    ]
    if latents.shape[1] > 0:
        pc1 = latent_pca(latents, 1).coordinates[:, 0]
        r = pearson(pc1, position)
        result.numbers["pc1_position_correlation"] = r
        rows.append(["correlation of PC1 with the true trajectory position", f"{r:.3f}"])
        figures.append(
            (plots.predicted_vs_true(position, pc1, out / "pc1_vs_truth"), "PC1 vs truth")
        )
    return Section(
        "Against the ground truth",
        paragraphs=[f"Ground truth from {truth_path}."],
        tables=[(["metric", "value"], rows)],
        figures=figures,
    )

"""Figures of a run (matplotlib, headless): each function writes PNG and SVG and returns the PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cryomotion.atomic_write import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path).with_suffix(".png")
    for suffix in (".png", ".svg"):
        with atomic_path(path.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=suffix[1:])
    plt.close(fig)
    return path


def latent_scatter(pc_coordinates: np.ndarray, path: Path, explained=None) -> Path:
    """PC1/PC2 of the particles: hexbin density for many particles, scatter for few."""
    fig, ax = plt.subplots(figsize=(5, 4.2))
    x = pc_coordinates[:, 0]
    y = pc_coordinates[:, 1] if pc_coordinates.shape[1] > 1 else np.zeros_like(x)
    if len(x) > 2000:
        hb = ax.hexbin(x, y, gridsize=60, bins="log", cmap="viridis", mincnt=1)
        fig.colorbar(hb, ax=ax, label="particles (log)")
    else:
        ax.scatter(x, y, s=4, alpha=0.6, c="tab:blue", edgecolors="none")
    label = ["PC1", "PC2"]
    if explained is not None:
        label = [f"PC{i + 1} ({100 * e:.1f} %)" for i, e in enumerate(explained[:2])] + ["PC2"]
    ax.set_xlabel(label[0])
    ax.set_ylabel(label[1] if pc_coordinates.shape[1] > 1 else "")
    ax.set_title("latent landscape")
    return _save(fig, path)


def pc_histogram(values, grid, density, maxima, path: Path) -> Path:
    """Histogram of PC1 with its kernel density and local maxima."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(values, bins=60, density=True, color="0.75", label="particles")
    ax.plot(grid, density, color="tab:blue", label="kernel density")
    for m in maxima:
        ax.axvline(m, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xlabel("PC1")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return _save(fig, path)


def state_counts(counts: np.ndarray, path: Path) -> Path:
    """Bar chart of particles per state."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    states = np.arange(1, len(counts) + 1)  # numbered from 1, as the report's table
    ax.bar(states, counts, color="tab:blue")
    ax.set_xlabel("state")
    ax.set_ylabel("particles")
    ax.set_xticks(states)
    return _save(fig, path)


# metrics.csv columns by what they measure: losses share a (log) axis; rates, times and
# fractions each get their own panel (one log axis mixing them hides all but the largest)
LOSS_COLUMNS = ("train_loss", "test_loss")
PANELS = (
    ("loss", LOSS_COLUMNS),
    ("particles/s", ("particles_per_s",)),
    ("seconds per epoch", ("epoch_seconds",)),
    ("intensity gain", ("intensity_gain",)),
    ("fraction outside the box", ("outside_box",)),
)


def training_curves(columns: dict[str, np.ndarray], path: Path) -> Path:
    """metrics.csv against the epoch: the losses on one panel (log scale when positive),
    the throughput, epoch time, intensity gain and fraction of models outside the box on
    panels of their own (only those present); other numeric columns on a last panel."""
    epoch = columns.get("epoch", np.arange(len(next(iter(columns.values())))))
    numeric = [
        k for k in columns if k not in ("epoch", "elapsed_seconds")
        and np.issubdtype(columns[k].dtype, np.number)
    ]  # fmt: skip
    known = {name for _, names in PANELS for name in names}
    panels = [(title, [n for n in names if n in numeric]) for title, names in PANELS]
    panels.append(("other", [n for n in numeric if n not in known]))
    panels = [(title, names) for title, names in panels if names]
    if not panels:
        panels = [("loss", [])]
    # at most three panels a row, so the figure stays legible at the report's width
    per_row = min(3, len(panels))
    rows = -(-len(panels) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(3.4 * per_row, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, names) in zip(axes.flat, panels, strict=False):
        for name in names:
            ax.plot(epoch, columns[name], marker="o", markersize=3, label=name)
        values = np.concatenate([columns[n] for n in names]) if names else np.array([1.0])
        finite = values[np.isfinite(values)]
        if title == "loss" and finite.size and np.all(finite > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        if len(names) > 1:
            ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def motion_picture(
    start: np.ndarray, end: np.ndarray, path: Path, title: str = "", axes=None
) -> Path | None:
    """Two ends of a motion as Cα traces (residues, 3) Å, drawn in the plane of the two
    largest principal axes of ``start``: the start in grey, the end coloured by each
    residue's displacement (Å). With ``axes`` (a matplotlib Axes) it draws there and
    returns None, else it writes ``path``."""
    center = start.mean(axis=0)
    _, _, vt = np.linalg.svd(start - center, full_matrices=False)
    plane = vt[:2].T
    a, b = (start - center) @ plane, (end - center) @ plane
    displacement = np.linalg.norm(end - start, axis=1)
    own = axes is None
    if own:
        fig, axes = plt.subplots(figsize=(4.2, 4.2))
    axes.plot(a[:, 0], a[:, 1], color="0.75", linewidth=1.2, label="start")
    from matplotlib.collections import LineCollection  # noqa: PLC0415

    segments = np.stack([b[:-1], b[1:]], axis=1)
    colour = 0.5 * (displacement[:-1] + displacement[1:])
    lines = LineCollection(segments, cmap="viridis", linewidth=2.0)
    lines.set_array(colour)
    lines.set_clim(0.0, max(float(displacement.max()), 1e-6))
    axes.add_collection(lines)
    axes.set_aspect("equal")
    axes.autoscale()
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title or f"max displacement {displacement.max():.1f} Å", fontsize=9)
    if own:
        fig.colorbar(lines, ax=axes, shrink=0.8, label="displacement (Å)")
        return _save(fig, path)
    return None


def motion_panels(motions: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """``motion_picture`` of several systems side by side (name -> (start, end))."""
    n = max(1, len(motions))
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.6), squeeze=False)
    for ax, (name, (start, end)) in zip(axes[0], motions.items(), strict=False):
        shown = np.linalg.norm(end - start, axis=1).max()
        motion_picture(start, end, path, title=f"{name}: max {shown:.1f} Å", axes=ax)
    fig.tight_layout()
    return _save(fig, path)


def shared_landscapes(coordinates: dict[str, np.ndarray], path: Path, explained=None) -> Path:
    """Each system's particles on the same two principal components (one scale, Å)."""
    n = max(1, len(coordinates))
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.3), squeeze=False, sharex=True,
                             sharey=True)  # fmt: skip
    for ax, (name, xy) in zip(axes[0], coordinates.items(), strict=False):
        y = xy[:, 1] if xy.shape[1] > 1 else np.zeros(len(xy))
        ax.scatter(xy[:, 0], y, s=3, alpha=0.35, edgecolors="none")
        ax.set_title(name, fontsize=10)
        label = "shared PC1 (Å)"
        if explained is not None:
            label += f", {100 * explained[0]:.0f} %"
        ax.set_xlabel(label)
    axes[0][0].set_ylabel("shared PC2 (Å)")
    fig.tight_layout()
    return _save(fig, path)


def disagreement_map(xy: np.ndarray, rmsd: np.ndarray, path: Path, title: str) -> Path:
    """Particles on the shared landscape coloured by the RMSD between two systems' models."""
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    y = xy[:, 1] if xy.shape[1] > 1 else np.zeros(len(xy))
    points = ax.scatter(xy[:, 0], y, c=rmsd, s=4, cmap="magma_r", edgecolors="none")
    fig.colorbar(points, ax=ax, label="Cα-RMSD between the systems (Å)")
    ax.set_xlabel("shared PC1 (Å)")
    ax.set_ylabel("shared PC2 (Å)")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def predicted_vs_true(true_position, predicted, path: Path, ylabel="predicted PC1") -> Path:
    """Predicted latent coordinate against the true position along the trajectory."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(true_position, predicted, s=4, alpha=0.4, edgecolors="none")
    ax.set_xlabel("true position along the trajectory")
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def rmsd_histogram(rmsd: np.ndarray, path: Path, baseline: np.ndarray | None = None) -> Path:
    """Per-particle RMSD to the truth, with the rigid (reference model) baseline if given."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    top = max(rmsd.max(), baseline.max() if baseline is not None else 0)
    bins = np.linspace(0, top * 1.02 + 1e-9, 50)
    if baseline is not None:
        ax.hist(
            baseline,
            bins=bins,
            color="0.7",
            label=f"reference (median {np.median(baseline):.2f} Å)",
        )
    ax.hist(
        rmsd,
        bins=bins,
        color="tab:blue",
        alpha=0.8,
        label=f"predicted (median {np.median(rmsd):.2f} Å)",
    )
    ax.set_xlabel("RMSD to the true model (Å)")
    ax.set_ylabel("particles")
    ax.legend(frameon=False)
    return _save(fig, path)


def regressed_vs_aligned(aligned: np.ndarray, regressed: np.ndarray, path: Path) -> Path:
    """Per latent dimension, the regressor's estimates (n, d) against the aligned values
    (n, d) of the same particles, with the identity line (DeepHEMNMA's validation)."""
    d = aligned.shape[1]
    fig, axes = plt.subplots(1, d, figsize=(3.4 * d, 3.3), squeeze=False)
    for k, ax in enumerate(axes[0]):
        ax.scatter(aligned[:, k], regressed[:, k], s=6, alpha=0.6, edgecolors="none")
        low = float(min(aligned[:, k].min(), regressed[:, k].min()))
        high = float(max(aligned[:, k].max(), regressed[:, k].max()))
        ax.plot([low, high], [low, high], color="0.5", lw=0.8)
        ax.set_xlabel(f"aligned latent {k + 1}")
        ax.set_ylabel(f"regressed latent {k + 1}")
    fig.suptitle("validation particles: regressor against elastic alignment")
    fig.tight_layout()
    return _save(fig, path)

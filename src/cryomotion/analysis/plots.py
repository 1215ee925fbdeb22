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
    ax.bar(np.arange(len(counts)), counts, color="tab:blue")
    ax.set_xlabel("state")
    ax.set_ylabel("particles")
    ax.set_xticks(np.arange(len(counts)))
    return _save(fig, path)


def training_curves(columns: dict[str, np.ndarray], path: Path) -> Path:
    """Every loss-like column of metrics.csv against the epoch (log scale when positive)."""
    epoch = columns.get("epoch", np.arange(len(next(iter(columns.values())))))
    names = [k for k in columns if k != "epoch" and np.issubdtype(columns[k].dtype, np.number)]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name in names:
        ax.plot(epoch, columns[name], marker="o", markersize=3, label=name)
    values = np.concatenate([columns[n] for n in names]) if names else np.array([1.0])
    if np.all(values[np.isfinite(values)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("training")
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

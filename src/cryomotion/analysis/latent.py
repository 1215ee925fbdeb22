"""The latent landscape: PCA, k-means states, density along PC1 and its maxima."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import argrelmax
from scipy.stats import gaussian_kde
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA


@dataclass(frozen=True)
class LatentPCA:
    """PCA of per-particle latents.

    ``coordinates`` (particles, k) are the particles' PC coordinates; ``components``
    (k, latent_dim), ``mean`` (latent_dim,) and ``explained_variance_ratio`` (k,) as in
    scikit-learn. ``to_latent(pc)`` maps PC coordinates back to latents.
    """

    coordinates: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray

    def to_latent(self, pc_coordinates: np.ndarray) -> np.ndarray:
        pc = np.atleast_2d(pc_coordinates)
        return self.mean + pc @ self.components[: pc.shape[1]]


def latent_pca(latents: np.ndarray, n_components: int = 3) -> LatentPCA:
    """PCA of (particles, latent_dim) latents, keeping ``min(n_components, latent_dim)`` PCs."""
    latents = np.asarray(latents, dtype=np.float64)
    k = max(1, min(n_components, latents.shape[1], len(latents)))
    pca = PCA(n_components=k, svd_solver="full").fit(latents)
    coordinates = pca.transform(latents)
    # Orient each PC so that the particles' median coordinate along it is not negative:
    # a deterministic sign makes runs comparable.
    signs = np.where(np.median(coordinates, axis=0) < 0, -1.0, 1.0)
    return LatentPCA(
        coordinates=coordinates * signs,
        components=pca.components_ * signs[:, None],
        mean=pca.mean_,
        explained_variance_ratio=pca.explained_variance_ratio_,
    )


def kmeans_states(latents: np.ndarray, n_states: int, seed: int = 0):
    """k-means on latents. Returns ``(labels (particles,), centers (k, latent_dim),
    representative (k,) index of the particle closest to each centre)``."""
    latents = np.asarray(latents, dtype=np.float64)
    n_states = max(1, min(n_states, len(latents)))
    kmeans = KMeans(n_clusters=n_states, n_init=10, random_state=seed).fit(latents)
    distances = np.linalg.norm(latents[:, None, :] - kmeans.cluster_centers_[None], axis=-1)
    representative = distances.argmin(axis=0)
    return kmeans.labels_, kmeans.cluster_centers_, representative


def trajectory_along_pc(pca: LatentPCA, pc: int, n_frames: int = 10, low=5.0, high=95.0):
    """Latents (n_frames, latent_dim) sweeping PC ``pc`` (0-based) across the particles'
    ``low``–``high`` percentile range, other PCs at zero (the mean)."""
    values = np.percentile(pca.coordinates[:, pc], [low, high])
    pc_coordinates = np.zeros((n_frames, pca.components.shape[0]))
    pc_coordinates[:, pc] = np.linspace(values[0], values[1], n_frames)
    return pca.to_latent(pc_coordinates)


def density_maxima(values: np.ndarray, n_grid: int = 512, min_prominence: float = 0.05):
    """Kernel density of a 1-D sample and its local maxima.

    Returns ``(grid (n_grid,), density (n_grid,), maxima (m,) positions)``; maxima lower
    than ``min_prominence`` × the highest one are dropped.
    """
    values = np.asarray(values, dtype=np.float64)
    span = values.max() - values.min()
    pad = 0.1 * span if span > 0 else 1.0
    grid = np.linspace(values.min() - pad, values.max() + pad, n_grid)
    if span == 0 or len(values) < 3:
        density = np.exp(-0.5 * ((grid - values.mean()) / pad) ** 2)
        return grid, density, np.array([values.mean()])
    density = gaussian_kde(values)(grid)
    peaks = argrelmax(density, order=3)[0]
    peaks = peaks[density[peaks] >= min_prominence * density.max()]
    return grid, density, grid[peaks]

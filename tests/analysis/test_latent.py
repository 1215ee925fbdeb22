import numpy as np

from cryomotion.analysis.latent import (
    density_maxima,
    kmeans_states,
    latent_pca,
    trajectory_along_pc,
)


def test_pca_finds_the_dominant_direction():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0, 0.0, 0.0]) / 5.0
    t = rng.normal(size=2000)
    latents = 2.0 + t[:, None] * direction * 5 + rng.normal(size=(2000, 4)) * 0.1
    pca = latent_pca(latents, n_components=2)
    assert pca.explained_variance_ratio[0] > 0.98
    assert abs(abs(pca.components[0] @ direction) - 1) < 1e-3
    np.testing.assert_allclose(pca.to_latent(pca.coordinates), latents, atol=0.5)


def test_trajectory_spans_percentiles():
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(1000, 3)) * [5, 1, 0.1]
    pca = latent_pca(latents)
    frames = trajectory_along_pc(pca, 0, n_frames=10)
    along = (frames - pca.mean) @ pca.components[0]
    np.testing.assert_allclose(along[[0, -1]], np.percentile(pca.coordinates[:, 0], [5, 95]))


def test_kmeans_recovers_separated_states():
    rng = np.random.default_rng(2)
    centers = np.array([[0, 0], [10, 0], [0, 10]])
    labels_true = rng.integers(0, 3, size=600)
    latents = centers[labels_true] + rng.normal(size=(600, 2))
    labels, found, representative = kmeans_states(latents, 3)
    # Same partition up to relabelling.
    for k in range(3):
        assert len(set(labels_true[labels == k])) == 1
    assert np.linalg.norm(latents[representative] - found, axis=1).max() < 1.0


def test_density_maxima_of_three_modes():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(m, 0.3, 2000) for m in (-3, 0, 3)])
    _, _, maxima = density_maxima(values)
    assert len(maxima) == 3
    np.testing.assert_allclose(np.sort(maxima), [-3, 0, 3], atol=0.2)

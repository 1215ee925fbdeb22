"""Several systems' runs on the same particles, compared.

From the data alone (what a user without ground truth has):

- ``heldout_misfit``: how well each run's models explain the held-out images, as the
  Gaussian misfit (χ² per pixel in units of the noise variance) of each particle's model,
  rendered with the run's pose and the particle's CTF and scaled by one least-squares gain,
  against the normalised image. Every system is scored by the same renderer, normalisation
  and gain whatever loss it trained with, so the numbers compare across systems; the rigid
  reference model scored the same way is the baseline. At the right model the value is the
  noise's, 1 per pixel.
- ``agreement``: for every pair of systems, each particle's Cα-RMSD between the models the
  two give it (superposed), summarised by the median.
- ``shared_landscape``: every system's per-particle models projected on the principal
  components of all of them together, so landscapes share one scale (Å along a motion)
  instead of each system's own latent units.

With a simulated dataset's ground truth, ``against_truth`` adds the per-particle Cα-RMSD,
the EMD-RMSD and the rigid baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryomotion.analysis.metrics import emd_rmsd, per_particle_rmsd
from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.poses import resolve_rotation_center
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.intensity import background_statistics
from cryomotion.structure.superpose import superpose
from cryomotion.train.results import TrainedRun, particle_coords, run_particles


def ca_atoms(run: TrainedRun) -> np.ndarray:
    """Atom indices of the reference model's Cα atoms."""
    ca = run.reference.ca_index
    return ca[ca >= 0]


@torch.no_grad()
def heldout_misfit(
    run: TrainedRun, indices: np.ndarray, batch_size: int = 64, rigid: bool = False
) -> np.ndarray:
    """(n,) χ² per pixel of the particles ``indices`` (see the module docstring): each
    model, or with ``rigid`` the reference model, rendered at the run's training box with
    the run's pose, against the image normalised to unit background noise (the median
    background standard deviation of these images), after one least-squares gain over
    all of them."""
    config = run.config
    table = run_particles(config)
    dataset = ParticleDataset(table, box=config.data.box, invert_contrast=config.data.invert_data)
    center = resolve_rotation_center(
        config.data.rotation_center, run.reference, table.box_size, table.single_pixel_size
    )
    renderer = AtomRenderer.from_model(
        run.reference, dataset.box, dataset.pixel_size, rotation_center=center
    )
    position = {int(p): i for i, p in enumerate(run.particle_index)}
    indices = np.asarray(indices, dtype=np.int64)
    rendered, measured = [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        rows = np.array([position[int(i)] for i in chunk])
        items = [dataset[int(i)] for i in chunk]
        if rigid:
            coords = np.broadcast_to(run.reference.coords, (len(chunk), run.reference.n_atoms, 3))
        else:
            coords = particle_coords(run, rows)
        rotations = (
            torch.as_tensor(run.rotations[rows])
            if run.rotations is not None
            else torch.stack([item["rotation"] for item in items])
        )
        images = renderer(
            torch.as_tensor(np.ascontiguousarray(coords), dtype=torch.float32),
            rotations.float(),
            torch.as_tensor(run.shifts[rows], dtype=torch.float32),
            torch.stack([item["ctf"] for item in items]),
        )
        rendered.append(images.double())
        measured.append(torch.stack([item["image"] for item in items]).double())
    dataset.close()
    if not rendered:
        return np.zeros(0)
    rendered_all, measured_all = torch.cat(rendered), torch.cat(measured)
    mean, sigma = background_statistics(measured_all)
    normalised = (measured_all - mean.double()[:, None, None]) / float(torch.median(sigma))
    gain = (rendered_all * normalised).sum() / (rendered_all * rendered_all).sum().clamp_min(1e-30)
    residual = normalised - gain * rendered_all
    return residual.square().mean(dim=(-2, -1)).numpy()


def pairwise_agreement(models: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Per-particle Cα-RMSD (n,) Å between every pair of systems' models (n, atoms, 3)."""
    names = list(models)
    return {
        (a, b): per_particle_rmsd(models[a], models[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


@dataclass(frozen=True)
class SharedLandscape:
    """Per-particle models of several systems on the principal components of them all.

    Each system's models are superposed onto the reference and centred on their own mean
    before the pooled PCA, so the components describe the motions the systems see, not
    the constant offset between one system's models and another's (the agreement table
    shows that).

    coordinates : system -> (n, k) Å along each unit component (a coordinate is ‖Δx‖
        over all atoms; the RMS displacement per atom is that over √atoms).
    components : (k, atoms·3) unit vectors; means : system -> (atoms, 3) Å;
    explained : (k,) fraction of the pooled variance; reference : (atoms, 3) Å.
    """

    coordinates: dict[str, np.ndarray]
    components: np.ndarray
    means: dict[str, np.ndarray]
    explained: np.ndarray
    reference: np.ndarray

    def project(self, models: np.ndarray, system: str) -> np.ndarray:
        """(n, k) coordinates of other models (n, atoms, 3) of ``system``."""
        aligned = superpose(models, self.reference) - self.means[system]
        return aligned.reshape(len(aligned), -1) @ self.components.T


def shared_landscape(
    models: dict[str, np.ndarray], reference: np.ndarray, n_components: int = 2
) -> SharedLandscape:
    """The pooled PCA of every system's models (n, atoms, 3) (see ``SharedLandscape``)."""
    aligned = {name: superpose(coords, reference) for name, coords in models.items()}
    means = {name: a.mean(axis=0) for name, a in aligned.items()}
    stacked = np.concatenate([(a - means[name]).reshape(len(a), -1) for name, a in aligned.items()])
    _, singular, vt = np.linalg.svd(stacked, full_matrices=False)
    k = min(n_components, len(vt))
    variance = singular**2
    explained = variance[:k] / max(variance.sum(), 1e-30)
    coordinates = {
        name: (a - means[name]).reshape(len(a), -1) @ vt[:k].T for name, a in aligned.items()
    }
    return SharedLandscape(coordinates, vt[:k], means, explained, reference)


def against_truth(
    predicted: np.ndarray, truth: np.ndarray, reference: np.ndarray, n_emd: int, seed: int = 0
) -> dict[str, float]:
    """Median per-particle Cα-RMSD of ``predicted`` (n, atoms, 3) to ``truth``, the rigid
    baseline's (``reference`` (atoms, 3)), and the EMD-RMSD on ``n_emd`` particles."""
    rmsd = per_particle_rmsd(predicted, truth)
    baseline = per_particle_rmsd(np.broadcast_to(reference, truth.shape), truth)
    rng = np.random.default_rng(seed)
    subset = rng.choice(len(truth), size=min(n_emd, len(truth)), replace=False)
    return {
        "median_rmsd": float(np.median(rmsd)),
        "median_rmsd_reference": float(np.median(baseline)),
        "emd_rmsd": emd_rmsd(predicted[subset], truth[subset]),
    }

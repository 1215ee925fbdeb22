"""The information limit of a benchmark's simulated dataset, computed once and cached.

``analysis.information_limit`` on a random subset of the particles (the posterior mean of
the true frames given each image: no method beats it on average), kept in a JSON file
beside the data so that every table drawing on the same images reuses it. Also the rigid
baseline of the same data (the reference for every particle), the number every accuracy
table already shows, so that a limit can be checked to belong to a table's images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cryomotion.analysis.information_limit import information_limit
from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.structure.io import read_model


def dataset_limit(
    folder: Path, particles: int = 300, seed: int = 0, cache: Path | None = None
) -> dict[str, float]:
    """The limit's medians (``InformationLimit.summary``: ``median_limit``,
    ``median_posterior_width``, …, Cα, Å) of the simulated dataset in ``folder`` on
    ``particles`` drawn with ``seed``, and ``particles``. Cached in ``cache`` (default
    ``folder/limit.json``) and recomputed when the particles or seed asked for differ."""
    path = Path(cache) if cache is not None else Path(folder) / "limit.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("particles") == particles and saved.get("seed", seed) == seed:
            return saved
    with np.load(Path(folder) / "ground_truth.npz", allow_pickle=False) as truth:
        n = len(truth["frame_index"])
    subset = np.random.default_rng(seed).choice(n, min(particles, n), replace=False)
    summary = information_limit(folder, np.sort(subset), progress=False).summary()
    summary.update(particles=particles, seed=seed)
    path.write_text(json.dumps(summary))
    return summary


def rigid_baseline(folder: Path) -> float:
    """Median over all particles of the Cα-RMSD (Å, superposed) of the dataset's reference
    to each particle's true frame."""
    folder = Path(folder)
    name = "reference.pdb" if (folder / "reference.pdb").is_file() else "reference.cif"
    reference = read_model(folder / name)
    ca = reference.ca_index[reference.ca_index >= 0]
    with np.load(folder / "ground_truth.npz", allow_pickle=False) as truth:
        frames = truth["frame_coords"][:, ca].astype(np.float64)
        index = truth["frame_index"]
    per_frame = per_particle_rmsd(
        np.broadcast_to(reference.coords[ca].astype(np.float64), frames.shape), frames
    )
    return float(np.median(per_frame[index]))


def limit_cell(summary: dict | None) -> str:
    """A table cell: "limit (posterior width)", Å, or "–" when there is none."""
    if not summary:
        return "–"
    return f"{summary['median_limit']:.2f} ({summary['median_posterior_width']:.2f})"

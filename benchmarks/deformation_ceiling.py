"""The deformation ceiling on AdK's hinge path (issue 18, item 4).

The best a system's latent space can do for the true conformations, whatever its encoder:

* nma: each frame of ``adk_hinge_path`` superposed onto the reference (open AdK, all atoms)
  and projected onto the d lowest ANM modes, for several d and elastic networks (Cα nodes
  with cutoffs 10, 15 (the default), 20 Å; residue-centroid nodes), median Cα-RMSD over
  the frames;
* segments: each segment superposed rigidly on its own onto the frame
  (``seed001_adk.rigid_floor``) for N segments, either contiguous pieces of equal length
  along the chain (what an untrained mixture starts near) or the domains' own runs split
  until there are N (``seed001_adk.domain_pieces``: what a segmentation that found the
  domains reaches).

Results go to the ``deformation_ceiling`` section of docs/results.md.

Usage::

    python benchmarks/deformation_ceiling.py
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

from cryomotion.analysis.metrics import per_particle_rmsd
from cryomotion.analysis.segmentation import ADK_DOMAINS, domain_labels
from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.simulate.paths import adk_hinge_path
from cryomotion.structure.superpose import superpose
from report import write_section
from seed001_adk import domain_pieces, rigid_floor

NETWORKS = {
    "Cα, cutoff 15 Å (default)": {"nodes": "ca", "cutoff": 15.0},
    "Cα, cutoff 10 Å": {"nodes": "ca", "cutoff": 10.0},
    "Cα, cutoff 20 Å": {"nodes": "ca", "cutoff": 20.0},
    "residue centroids, cutoff 15 Å": {"nodes": "centroid", "cutoff": 15.0},
}


def nma_ceiling(reference, frames: np.ndarray, modes: np.ndarray, ca: np.ndarray) -> float:
    """Median over frames of the Cα-RMSD left by the projection on ``modes`` (d, atoms, 3)."""
    basis = modes.reshape(len(modes), -1)
    aligned = superpose(frames, np.broadcast_to(reference, frames.shape))
    amplitudes = (aligned - reference).reshape(len(frames), -1) @ basis.T
    projected = reference + (amplitudes @ basis).reshape(frames.shape)
    return float(np.median(per_particle_rmsd(projected[:, ca], frames[:, ca])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--modes", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--segments", type=int, nargs="+", default=[2, 3, 4, 6, 8, 12])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    model, frames = adk_hinge_path(args.frames)
    reference = model.coords
    ca = model.ca_index[model.ca_index >= 0]
    rigid = float(np.median(per_particle_rmsd(np.broadcast_to(reference[ca], frames[:, ca].shape),
                                              frames[:, ca])))  # fmt: skip
    nma_rows = []
    for name, network in NETWORKS.items():
        modes = compute_normal_modes(model, n_modes=max(args.modes), **network).vectors
        nma_rows.append((name, [nma_ceiling(reference, frames, modes[:d], ca) for d in args.modes]))
        print(name, nma_rows[-1][1], flush=True)
    labels = domain_labels(model, ADK_DOMAINS)
    has_ca = model.ca_index >= 0
    n_residues = len(labels)
    segment_rows = []
    for n in args.segments:
        contiguous = np.minimum(np.arange(n_residues) * n // n_residues, n - 1)
        pieces = domain_pieces(labels, n)
        floors = [
            float(np.median([rigid_floor(reference[ca], f[None, ca], s[has_ca]) for f in frames]))
            if len(np.unique(s)) == n
            else float("nan")  # fewer segments than the domains' runs along the chain
            for s in (contiguous, pieces)
        ]
        segment_rows.append((n, *floors))
        print(n, floors, flush=True)
    lines = [
        "## The deformation ceiling on the hinge path (`benchmarks/deformation_ceiling.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}: the {args.frames} frames of "
        "`adk_hinge_path` (AdK open → closed, the LID then the NMP domain turning about "
        "their hinges), median Cα-RMSD (Å) over the frames of the closest conformation each "
        f"latent space holds; rigid reference {rigid:.2f} Å.",
        "",
        "nma: frame superposed onto open AdK and projected on the d lowest ANM modes.",
        "",
        "| elastic network | " + " | ".join(f"d = {d}" for d in args.modes) + " |",
        "|---|" + "---:|" * len(args.modes),
        *(
            f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |"
            for name, values in nma_rows
        ),  # fmt: skip
        "",
        "segments: each segment fitted rigidly on its own (AdK's domains make 5 runs along "
        "the chain — CORE, NMP, CORE, LID, CORE — so fewer segments cannot follow them).",
        "",
        "| N segments | contiguous equal pieces | the domains' runs, split to N |",
        "|---:|---:|---:|",
        *(f"| {n} | {a:.2f} | {b:.2f} |".replace("nan", "–") for n, a, b in segment_rows),
        "",
    ]
    default = dict(nma_rows)["Cα, cutoff 15 Å (default)"]
    best_name, best_values = min(nma_rows, key=lambda row: row[1][args.modes.index(16)]
                                 if 16 in args.modes else row[1][-1])  # fmt: skip
    if 16 in args.modes:
        k = args.modes.index(16)
        lines.append(
            f"At d = 16 the default network leaves {default[k]:.2f} Å; the best network here "
            f"({best_name}) {best_values[k]:.2f} Å; d = {args.modes[-1]} with the default "
            f"{default[-1]:.2f} Å. Segments that follow the domains reach "
            + ", ".join(f"{b:.2f} Å at N = {n}" for n, _, b in segment_rows if b == b)
            + "; equal contiguous pieces "
            + ", ".join(f"{a:.2f} Å at N = {n}" for n, a, _ in segment_rows)
            + "."
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print("wrote", write_section("deformation_ceiling", text, "results.md"))


if __name__ == "__main__":
    main()

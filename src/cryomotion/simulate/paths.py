"""Non-linear conformational paths: domains turning about hinges.

A linear morph moves every atom along a straight line, so a rotating domain shrinks
half-way and any linear latent space (normal modes) follows it exactly. Real transitions
turn domains about hinges. ``hinge_path`` builds such a path between two states of the
same atoms: the core is held fixed, each moving domain follows the screw motion (rotation
about its centroid, growing with the path coordinate, plus a linear translation of the
centroid) that takes it rigidly from the start to the end state, blended into its
neighbours over a few residues at each end, and what no rigid motion explains (the small
internal changes of each state) is added linearly, so that the path ends exactly at the
end state. ``adk_hinge_path`` is the adenylate kinase open -> closed transition as the
NMP and LID domains closing onto the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files

import numpy as np
from scipy.spatial.transform import Rotation

from cryomotion.errors import InputError
from cryomotion.structure.io import check_same_atoms, read_model
from cryomotion.structure.model import AtomicModel
from cryomotion.structure.superpose import kabsch

# E. coli adenylate kinase domains by residue number (Müller et al., Structure 1996):
# the rest (1-29, 60-121, 160-214) is the CORE.
ADK_DOMAINS: dict[str, tuple[int, int]] = {"NMP": (30, 59), "LID": (122, 159)}


def sequential_timing(n_domains: int, overlap: float = 0.3) -> list[tuple[float, float]]:
    """Windows of the path coordinate in which each of ``n_domains`` domains moves, in
    turn, each overlapping the next by ``overlap`` of the path (one domain: the whole path)."""
    if n_domains == 1:
        return [(0.0, 1.0)]
    length = (1.0 + (n_domains - 1) * overlap) / n_domains
    step = length - overlap
    return [(k * step, min(1.0, k * step + length)) for k in range(n_domains)]


# When each domain moves along the path coordinate s: the LID closes first, then the NMP
# domain (the order seen in simulations of substrate-free AdK), so the path is an "L" in
# the space of the two domain angles and no straight line through it fits it.
ADK_TIMING: dict[str, tuple[float, float]] = dict(
    zip(("LID", "NMP"), sequential_timing(2), strict=True)
)


def parse_domains(text: str) -> dict[str, tuple[int, int]]:
    """``"122-159,30-59"`` -> {"122-159": (122, 159), "30-59": (30, 59)} (residue numbers)."""
    domains = {}
    for part in text.split(","):
        try:
            first, last = (int(value) for value in part.strip().split("-"))
        except ValueError:
            raise InputError(
                f"--hinges {text!r}: expected residue ranges such as 122-159,30-59"
            ) from None
        if first > last:
            raise InputError(f"--hinges {text!r}: range {part} runs backwards")
        domains[part.strip()] = (first, last)
    return domains


def domain_weights(
    model: AtomicModel, domains: Mapping[str, tuple[int, int]], blend: int = 3
) -> np.ndarray:
    """(domains, atoms) weight of each domain's motion on each atom: 1 for the residues
    ``first..last`` (author numbers), falling linearly to 0 over ``blend`` residues on either
    side (so the chain bends at a hinge instead of tearing), 0 elsewhere."""
    numbers = model.residue_numbers.astype(np.float64)
    weights = np.zeros((len(domains), model.n_atoms))
    for k, (name, (first, last)) in enumerate(domains.items()):
        if not np.any((numbers >= first) & (numbers <= last)):
            raise InputError(f"domain {name} (residues {first}-{last}) has no atoms")
        outside = np.maximum(first - numbers, numbers - last).clip(min=0)
        weights[k] = np.clip(1.0 - outside / (blend + 1), 0.0, 1.0)
    return weights


def hinge_path(
    start: np.ndarray,
    end: np.ndarray,
    weights: np.ndarray,
    n_frames: int,
    timing: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Frames (n_frames, atoms, 3) Å from ``start`` to ``end`` (atoms, 3), both included.

    ``weights`` (domains, atoms) from ``domain_weights``. ``end`` is first superposed onto
    ``start`` on the atoms no domain moves (the core), so the core stays put. Domain k's
    rigid motion from start to end, x -> R (x - c) + c + Δ about its centroid c, is followed
    as x -> R(u) (x - c) + c + u Δ with R(u) = exp(u log R), where u in [0, 1] is the
    domain's own progress: with ``timing[k] = (a, b)`` it moves while the path coordinate s
    runs from a to b (smoothly started and stopped), else u = s for every domain.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    if n_frames < 2:
        raise InputError(f"a path needs at least 2 frames, not {n_frames}")
    core = weights.max(axis=0) == 0
    if core.sum() < 3:
        raise InputError("the domains cover the whole model: no core to hold fixed")
    rotation, translation = kabsch(end[core], start[core])
    end = end @ rotation.T + translation
    motions = []
    for w in weights:
        inside = w == 1
        r, t = kabsch(start[inside], end[inside])
        center = start[inside].mean(axis=0)
        motions.append((Rotation.from_matrix(r).as_rotvec(), center, r @ center + t - center))

    windows = timing if timing is not None else [(0.0, 1.0)] * len(weights)
    if len(windows) != len(weights) or any(not 0 <= a < b <= 1 for a, b in windows):
        raise InputError(f"timing {windows}: expected one window 0 <= a < b <= 1 per domain")

    def rigid(s: float) -> np.ndarray:
        coords = start.copy()
        for w, (rotvec, center, displacement), (a, b) in zip(
            weights, motions, windows, strict=True
        ):
            u = float(np.clip((s - a) / (b - a), 0.0, 1.0))
            u = u * u * (3.0 - 2.0 * u) if timing is not None else u  # smoothstep
            moved = (start - center) @ Rotation.from_rotvec(u * rotvec).as_matrix().T + center
            coords += w[:, None] * (moved + u * displacement - start)
        return coords

    residual = end - rigid(1.0)
    path = np.linspace(0.0, 1.0, n_frames)
    return np.stack([rigid(s) + s * residual for s in path])


def adk_hinge_path(n_frames: int) -> tuple[AtomicModel, np.ndarray]:
    """(reference model = AdK open, frames (F, atoms, 3) Å: open -> closed by hinge
    rotations of the LID and then the NMP domain (``ADK_TIMING``), the core fixed in the
    open model's frame)."""
    resources = files("cryomotion") / "resources"
    open_state = read_model(resources / "adk_open.pdb")
    closed = read_model(resources / "adk_closed.pdb")
    check_same_atoms(open_state, closed, "adk_closed.pdb")
    weights = domain_weights(open_state, ADK_DOMAINS)
    timing = [ADK_TIMING[name] for name in ADK_DOMAINS]
    return open_state, hinge_path(open_state.coords, closed.coords, weights, n_frames, timing)

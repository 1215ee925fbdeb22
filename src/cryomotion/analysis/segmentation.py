"""A learned segmentation of the residue chain (cryoSPHERE): hard segments, their residue
ranges, a model coloured by segment, a membership figure and scores against known domains.

``membership`` is (residues, segments) float, each row summing to 1, residues in the order of
the reference ``AtomicModel``; ``segments`` is (residues,) int, 0-based segment indices.
Segments are 0-based everywhere (ranges, tables, figure legend) except the B-factor column
of ``write_segmentation_model``, which holds segment + 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.ticker import FuncFormatter, MaxNLocator
from sklearn.metrics import adjusted_rand_score

from cryomotion.analysis.plots import _save  # also selects the headless Agg backend
from cryomotion.atomic_write import atomic_path
from cryomotion.structure.io import write_models
from cryomotion.structure.model import AtomicModel

# Adenylate kinase (E. coli, PDB 4AKE/1AKE numbering) domains as used in the AdK domain-motion
# literature (e.g. Müller, Schlauderer, Reinstein & Schulz 1996, Structure 4:147; Beckstein et
# al. 2009, J Mol Biol 394:160): LID 122-159, NMP 30-59, CORE the remaining residues (1-29,
# 60-121, 160-214). Author residue numbers, inclusive; pass rest="CORE" to domain_labels.
ADK_DOMAINS: dict[str, list[tuple[int, int]]] = {"LID": [(122, 159)], "NMP": [(30, 59)]}


def hard_segments(membership: np.ndarray) -> np.ndarray:
    """(residues,) int: the segment of highest membership of each residue (first on ties)."""
    membership = np.asarray(membership, dtype=np.float64)
    if membership.ndim != 2 or membership.shape[1] == 0:
        raise ValueError(f"membership has shape {membership.shape}, expected (residues, segments)")
    return np.argmax(membership, axis=1).astype(np.int64)


def _check_segments(model: AtomicModel, segments: np.ndarray) -> np.ndarray:
    segments = np.asarray(segments)
    if segments.shape != (model.n_residues,):
        raise ValueError(
            f"segments has shape {segments.shape}, expected ({model.n_residues},) "
            f"(one per residue of the model)"
        )
    if not np.issubdtype(segments.dtype, np.integer):
        if not np.all(segments == np.round(segments)):
            raise ValueError("segments must be integer segment indices")
        segments = segments.astype(np.int64)
    if len(segments) and segments.min() < 0:
        raise ValueError("segments must be non-negative (0-based segment indices)")
    return segments


def _residue_labels(model: AtomicModel) -> list[int | str]:
    """Author residue number of each residue: int, or str like "52A" with an insertion code."""
    first = model.residue_first_atom
    numbers = model.residue_numbers[first]
    codes = model.insertion_codes[first]
    return [f"{n}{c}" if c else int(n) for n, c in zip(numbers, codes)]


@dataclass(frozen=True)
class SegmentRange:
    """One contiguous run of residues of one chain in the same segment.

    ``segment`` is 0-based (the membership column; the B-factor file holds segment + 1).
    ``first_residue``/``last_residue`` are author residue numbers: int, or str such as "52A"
    where the residue has an insertion code.
    """

    segment: int
    chain: str
    first_residue: int | str
    last_residue: int | str
    n_residues: int


def segment_ranges(model: AtomicModel, segments: np.ndarray) -> list[SegmentRange]:
    """The runs of equal segment within each chain, in residue order (a segment can have many)."""
    segments = _check_segments(model, segments)
    chains = model.residue_chain_ids
    labels = _residue_labels(model)
    ranges: list[SegmentRange] = []
    start = 0
    for i in range(1, len(segments) + 1):
        if i == len(segments) or segments[i] != segments[start] or chains[i] != chains[start]:
            ranges.append(
                SegmentRange(
                    segment=int(segments[start]),
                    chain=str(chains[start]),
                    first_residue=labels[start],
                    last_residue=labels[i - 1],
                    n_residues=i - start,
                )
            )
            start = i
    return ranges


_COLUMNS = ("segment", "chain", "first_residue", "last_residue", "n_residues")


def _row(r: SegmentRange) -> list[str]:
    return [str(r.segment), r.chain, str(r.first_residue), str(r.last_residue), str(r.n_residues)]


def ranges_table_markdown(ranges: Sequence[SegmentRange]) -> str:
    """A Markdown table of the ranges (a blank chain id shows as "-")."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for r in ranges:
        cells = _row(r)
        cells[1] = cells[1] or "-"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ranges_tsv(ranges: Sequence[SegmentRange], path: str | os.PathLike) -> Path:
    """Write the ranges as tab-separated values with a header line (atomically)."""
    path = Path(path)
    text = "\t".join(_COLUMNS) + "\n" + "".join("\t".join(_row(r)) + "\n" for r in ranges)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_segmentation_model(
    model: AtomicModel, segments: np.ndarray, path: str | os.PathLike
) -> Path:
    """Write the model (PDB or mmCIF by suffix) with B-factor = its residue's segment + 1.

    1-based so that ChimeraX ``color bfactor`` gives every segment its own colour.
    """
    segments = _check_segments(model, segments)
    b_factors = (segments[model.residue_index] + 1).astype(np.float64)
    return write_models(path, model, b_factors=b_factors)


PDB_ATOM_LIMIT = 99999  # atom serial numbers a PDB file holds in decimal


def write_segmentation_products(
    model: AtomicModel, membership: np.ndarray, folder: str | os.PathLike
) -> list[Path]:
    """The products of a learned segmentation in ``folder``: ``segmentation.pdb`` (``.cif``
    for models too large for PDB) with segment + 1 in the B-factor column,
    ``segments.tsv`` (residue ranges) and ``segmentation.png``/``.svg`` (membership)."""
    folder = Path(folder)
    segments = hard_segments(membership)
    suffix = ".pdb" if model.n_atoms <= PDB_ATOM_LIMIT else ".cif"
    written = [write_segmentation_model(model, segments, folder / f"segmentation{suffix}")]
    written.append(write_ranges_tsv(segment_ranges(model, segments), folder / "segments.tsv"))
    written.append(membership_plot(model, membership, folder / "segmentation.png"))
    return written


def _segment_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA: tab10 / tab20 for few segments, an evenly sampled turbo map beyond."""
    if n <= 10:
        return plt.get_cmap("tab10")(np.arange(n))
    if n <= 20:
        return plt.get_cmap("tab20")(np.arange(n))
    return plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))


def membership_plot(model: AtomicModel, membership: np.ndarray, path: str | os.PathLike) -> Path:
    """Stacked membership of each residue in each segment, with a strip of the hard segments.

    x: residues in model order, ticks labelled by author residue number; chain boundaries are
    vertical lines with the chain ids above. Writes PNG and SVG; returns the PNG path.
    """
    membership = np.asarray(membership, dtype=np.float64)
    n_res = model.n_residues
    if membership.ndim != 2 or membership.shape[0] != n_res:
        raise ValueError(f"membership has shape {membership.shape}, expected ({n_res}, segments)")
    n_seg = membership.shape[1]
    colors = _segment_colors(n_seg)
    segments = hard_segments(membership)
    x = np.arange(n_res)
    labels = _residue_labels(model)
    chains = model.residue_chain_ids

    fig, (ax, strip) = plt.subplots(
        2,
        1,
        figsize=(max(6.0, min(16.0, 4.0 + n_res / 40)), 3.6),
        sharex=True,
        gridspec_kw={"height_ratios": [5, 1], "hspace": 0.08},
    )
    bottom = np.zeros(n_res)
    for k in range(n_seg):
        top = bottom + membership[:, k]
        ax.fill_between(
            x, bottom, top, step="mid", color=colors[k], linewidth=0, label=f"segment {k}"
        )
        bottom = top
    ax.set_xlim(-0.5, n_res - 0.5)
    ax.set_ylim(0, max(1.0, float(bottom.max()) if n_res else 1.0))
    ax.set_ylabel("membership")
    strip.imshow(
        segments[None, :],
        aspect="auto",
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=n_seg - 0.5,
        interpolation="nearest",
        extent=(-0.5, n_res - 0.5, 0, 1),
    )
    strip.set_yticks([])
    strip.set_ylabel("hard", rotation=0, ha="right", va="center")

    boundaries = [i for i in range(1, n_res) if chains[i] != chains[i - 1]]
    for b in boundaries:
        for a in (ax, strip):
            a.axvline(b - 0.5, color="black", linewidth=1)
    if boundaries or (n_res and chains[0]):
        edges = [0, *boundaries, n_res]
        for lo, hi in zip(edges[:-1], edges[1:]):
            ax.text(
                (lo + hi - 1) / 2,
                1.02,
                f"chain {chains[lo] or '-'}",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
            )

    def tick_label(value, _pos):
        i = int(round(value))
        return str(labels[i]) if 0 <= i < n_res and abs(value - i) < 1e-6 else ""

    strip.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    strip.xaxis.set_major_formatter(FuncFormatter(tick_label))
    strip.set_xlabel("residue number")
    if n_seg <= 20:
        ax.legend(
            frameon=False,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncol=1 if n_seg <= 10 else 2,
        )
    return _save(fig, Path(path))


def domain_labels(
    model: AtomicModel,
    domains: dict[str, list[tuple[int, int]]],
    rest: str | None = "CORE",
) -> np.ndarray:
    """(residues,) str: the domain of each residue by inclusive author-number ranges (any chain).

    Residues in no range get ``rest``; with ``rest=None`` they get "" and are left out of
    ``domain_recovery``. Raises ``ValueError`` where two domains' ranges overlap on a residue.
    """
    numbers = model.residue_numbers[model.residue_first_atom]
    names = list(domains)
    width = max([len(n) for n in names] + [len(rest or ""), 1])
    labels = np.full(model.n_residues, "", dtype=f"<U{width}")
    for name, spans in domains.items():
        inside = np.zeros(model.n_residues, dtype=bool)
        for lo, hi in spans:
            inside |= (numbers >= lo) & (numbers <= hi)
        clash = inside & (labels != "") & (labels != name)
        if clash.any():
            i = int(np.argmax(clash))
            raise ValueError(f"residue {numbers[i]} is in both domain {labels[i]!r} and {name!r}")
        labels[inside] = name
    if rest is not None:
        if rest in domains:
            raise ValueError(f"rest label {rest!r} is also a domain name")
        labels[labels == ""] = rest
    return labels


@dataclass(frozen=True)
class DomainRecovery:
    """How well a segmentation recovers known domains.

    Each segment is assigned to the domain holding most of its residues. Per domain:
    ``segments`` the segments assigned to it; ``recovery`` the fraction of its residues whose
    segment is assigned to it (a domain split cleanly over several segments scores 1);
    ``purity`` the fraction of residues in its assigned segments that belong to it (0 where
    no segment is assigned). ``adjusted_rand`` compares segments and domains directly.
    """

    domains: tuple[str, ...]
    adjusted_rand: float
    segments: dict[str, tuple[int, ...]]
    recovery: dict[str, float]
    purity: dict[str, float]
    n_residues: dict[str, int]

    def recovered(self, threshold: float = 0.8) -> dict[str, bool]:
        """Per domain: recovery and purity both at least ``threshold``."""
        return {
            d: bool(self.recovery[d] >= threshold and self.purity[d] >= threshold)
            for d in self.domains
        }

    def summary(self) -> str:
        """E.g. "LID 0.97/1.00, NMP 0.93/0.96, CORE 0.99/0.95 (ARI 0.91)" (recovery/purity)."""
        parts = [f"{d} {self.recovery[d]:.2f}/{self.purity[d]:.2f}" for d in self.domains]
        return ", ".join(parts) + f" (ARI {self.adjusted_rand:.2f})"


def domain_recovery(
    segments: np.ndarray, labels: np.ndarray, order: Sequence[str] | None = None
) -> DomainRecovery:
    """Score (residues,) segments against (residues,) domain labels (from ``domain_labels``).

    Residues labelled "" are ignored. ``order``: the domains' order in the result (default:
    first appearance along the chain); ties in segment assignment go to the earlier domain.
    """
    segments = np.asarray(segments)
    labels = np.asarray(labels).astype(str)
    if segments.shape != labels.shape or segments.ndim != 1:
        raise ValueError(
            f"segments {segments.shape} and labels {labels.shape} must both be (residues,)"
        )
    keep = labels != ""
    segments, labels = segments[keep], labels[keep]
    if len(labels) == 0:
        raise ValueError("no labelled residues to score")
    present = list(dict.fromkeys(labels.tolist()))
    if order is None:
        domains = tuple(present)
    else:
        domains = tuple(order)
        missing = set(present) - set(domains)
        if missing:
            raise ValueError(f"order lacks domains {sorted(missing)}")
    domain_index = {d: i for i, d in enumerate(domains)}
    label_idx = np.array([domain_index[x] for x in labels.tolist()], dtype=np.int64)
    seg_ids, seg_idx = np.unique(segments, return_inverse=True)
    counts = np.zeros((len(seg_ids), len(domains)), dtype=np.int64)
    np.add.at(counts, (seg_idx, label_idx), 1)
    assigned = np.argmax(counts, axis=1)  # (segments,) domain of each segment

    per_segments, recovery, purity, sizes = {}, {}, {}, {}
    for j, d in enumerate(domains):
        mine = assigned == j
        size = int(counts[:, j].sum())
        covered = int(counts[mine, j].sum())
        total = int(counts[mine].sum())
        per_segments[d] = tuple(int(s) for s in seg_ids[mine])
        recovery[d] = covered / size if size else 0.0
        purity[d] = covered / total if total else 0.0
        sizes[d] = size
    return DomainRecovery(
        domains=domains,
        adjusted_rand=float(adjusted_rand_score(labels, segments)),
        segments=per_segments,
        recovery=recovery,
        purity=purity,
        n_residues=sizes,
    )

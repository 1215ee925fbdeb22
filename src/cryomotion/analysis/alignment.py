"""The report section of a run that aligned a subset elastically and regressed the rest
(DeepHEMNMA): how many particles came from each, the aligned particles' misfit, and the
regressor against the alignment on the validation particles it never trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomotion.analysis import plots
from cryomotion.analysis.report import Section
from cryomotion.train.results import TrainedRun


def _mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.3g} ± {values.std():.3g}" if len(values) else "–"


def alignment_section(run: TrainedRun, out: Path) -> Section | None:
    """The "Elastic alignment" section, or None for a run without aligned particles."""
    if "aligned" not in run.alignment:
        return None
    aligned = run.alignment["aligned"]
    misfit = run.alignment.get("misfit")
    regressed = run.alignment.get("regressed_latents")
    paragraphs = [
        f"{int(aligned.sum())} aligned particles (elastic alignment, their values are written "
        f"as aligned) and {int((~aligned).sum())} regressed (the network's estimate). "
        f"{int((aligned & run.is_test).sum())} aligned particles were held out of the "
        "regressor's training for validation."
    ]
    rows = []
    if misfit is not None and aligned.any():
        rows.append(["image misfit of the aligned particles", _mean_sd(misfit[aligned])])
    figures = []
    validation = aligned & run.is_test
    if regressed is not None and validation.any() and run.latents.shape[1]:
        error = np.abs(regressed[validation] - run.latents[validation])
        for k in range(error.shape[1]):
            rows.append(
                [f"|regressed − aligned|, latent {k + 1} (validation)", _mean_sd(error[:, k])]
            )
        figure = plots.regressed_vs_aligned(
            run.latents[validation], regressed[validation], out / "regressed_vs_aligned"
        )
        figures.append((figure, "regressed against aligned latents, validation particles"))
    tables = [(["quantity", "mean ± sd"], rows)] if rows else []
    return Section("Elastic alignment", paragraphs=paragraphs, tables=tables, figures=figures)

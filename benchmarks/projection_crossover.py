"""Where gridding projects faster than the direct Fourier sum: measurements and cost model.

For scatterers n, types T and box D, times forward + backward (gradient w.r.t. positions of
Σ W·image) per image of ``projection.project_fourier`` (direct) and
``gridding.project_gridding``, on one thread timed by its CPU time (a shared machine barely
changes it), random positions and 5-Gaussian form factors. Fits by non-negative least
squares on relative residuals the cost models ``cryomotion.imaging.gridding.cost_terms``,

    direct:   t = c₁ n K² + c₂ n K + c₃ D²              (K = D//2 + 1)
    gridding: t = c₁ n + c₂ T M² log₂ M + c₃ D² + c₄    (M = 2D: spreading, FFTs)

whose constants ``cryomotion.imaging.gridding.COST_MODEL`` holds, and which
``AtomRenderer(projection="auto")`` compares. Results go to the ``projection_crossover``
section of docs/performance.md.

Usage::

    python benchmarks/projection_crossover.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import nnls

from cryomotion.imaging.gridding import (
    COST_MODEL,
    cost_terms,
    gridding_weights,
    predicted_seconds,
    project_gridding,
)
from cryomotion.imaging.projection import gram_weights, project_fourier, quadrant_form_factors
from report import write_section

SIZES = (  # (scatterers, types, box)
    (200, 1, 32), (200, 1, 64), (200, 1, 128),
    (800, 4, 32), (800, 4, 64), (800, 4, 128),
    (1656, 4, 64), (1656, 4, 128),
    (3200, 4, 32), (3200, 4, 64), (3200, 4, 128),
    (12800, 4, 128), (12800, 4, 256),
)  # fmt: skip


def seconds_per_image(method: str, n: int, types: int, box: int, batch: int) -> float:
    """Median CPU seconds per image of forward + backward, one thread."""
    generator = torch.Generator().manual_seed(n + box)
    a = torch.rand(types, 5, dtype=torch.float64, generator=generator)
    b = torch.rand(types, 5, dtype=torch.float64, generator=generator) * 30 + 0.3
    quadrant = quadrant_form_factors(a, b, box, 1.0)
    offsets = tuple(int(v) for v in np.linspace(0, n, types + 1))
    positions = (torch.rand(batch, n, 2, generator=generator) * box).requires_grad_()
    image_weights = torch.randn(batch, box, box, generator=generator)
    if method == "direct":
        weights = gram_weights(quadrant, box).float()
        project = project_fourier
    else:
        weights = gridding_weights(quadrant, box).float()
        project = project_gridding

    def step():
        positions.grad = None
        spectrum = project(positions, weights, offsets, box)
        (torch.fft.irfft2(spectrum, s=(box, box)) * image_weights).sum().backward()

    step()
    times = []
    for _ in range(3):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return float(np.median(times)) / batch


def fit(rows: list[dict]) -> dict[str, tuple[float, ...]]:
    """Non-negative least-squares constants of both models, residuals relative to the
    measured times."""
    constants = {}
    for method, key in (("direct", "t_direct"), ("gridding", "t_grid")):
        design = np.array([cost_terms(method, r["n"], r["types"], r["box"]) for r in rows])
        measured = np.array([r[key] for r in rows])
        solution, _ = nnls(design / measured[:, None], np.ones(len(rows)))
        constants[method] = tuple(float(c) for c in solution)
    return constants


def formatted(constants: dict[str, tuple[float, ...]]) -> str:
    return "; ".join(
        f"{method} ({', '.join(f'{c:.4g}' for c in values)})"
        for method, values in constants.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    rows = []
    for n, types, box in SIZES:
        row = {"n": n, "types": types, "box": box}
        row["t_direct"] = seconds_per_image("direct", n, types, box, args.batch)
        row["t_grid"] = seconds_per_image("gridding", n, types, box, args.batch)
        rows.append(row)
        print(row, flush=True)
    constants = fit(rows)
    print("fitted", constants, "in use", COST_MODEL)
    lines = [
        "## Direct sum or gridding: crossover (`benchmarks/projection_crossover.py`)",
        "",
        f"One thread, CPU seconds per image of forward + backward, batch {args.batch}, float32; "
        f"run {time.strftime('%Y-%m-%d %H:%M')}, load average {load[0]:.1f} / {load[1]:.1f}. "
        "Cost models (`cryomotion.imaging.gridding.cost_terms`): direct "
        "t = c₁ n K² + c₂ n K + c₃ D² (K = D/2+1); gridding t = c₁ n + c₂ T M² log₂ M + c₃ D² "
        "+ c₄ (M = 2D, T scatterer types). Fitted to these rows (non-negative least squares "
        f"on relative residuals), seconds: {formatted(constants)}. "
        '`AtomRenderer(projection="auto")` compares the models with the constants in '
        f"`cryomotion.imaging.gridding.COST_MODEL`: {formatted(COST_MODEL)}; the columns "
        "*model* and *auto picks* use those.",
        "",
        "| scatterers | types | box (px) | direct ms/img | gridding ms/img | speed-up | "
        "model: direct | model: gridding | auto picks |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        n, types, box = r["n"], r["types"], r["box"]
        model_direct = predicted_seconds("direct", n, types, box)
        model_grid = predicted_seconds("gridding", n, types, box)
        lines.append(
            f"| {n:,} | {types} | {box} | {1e3 * r['t_direct']:.3f} | {1e3 * r['t_grid']:.3f} | "
            f"{r['t_direct'] / r['t_grid']:.2f}× | {1e3 * model_direct:.3f} | "
            f"{1e3 * model_grid:.3f} | {'gridding' if model_grid < model_direct else 'direct'} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"written to {write_section('projection_crossover', text)}")


if __name__ == "__main__":
    main()

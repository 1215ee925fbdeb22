"""Time and peak memory of the lowest 20 ANM modes at ~2,000, ~5,000 and ~14,000 Cα nodes.

Large networks are built from copies of adenylate kinase (214 Cα) translated by the extent
of its Cα bounding box, so neighbouring copies touch and the network is connected:

* ``row``: the copies side by side along x (an elongated assembly, a filament);
* ``grid``: the copies stacked in a compact 3D block (a globular assembly such as the
  spliceosome, ~14,000 residues, that cryoSPHERE studied). Compact networks cost more: the
  sparse factorisation fills in more.

For each size and layout: ours (KD-tree neighbour list, vectorised sparse Hessian,
shift-invert Lanczos on a sparse factor of the shifted Hessian: ``cryomotion.dynamics``,
once for each factoriser of ``--factorisers``: SciPy's SuperLU, CHOLMOD from the optional
cvxopt, or the automatic choice) next to
ProDy's sparse mode (``ANM.buildHessian(sparse=True)`` and ``calcModes(20)``), each in its
own process so its peak resident memory is its own, with the largest relative difference
of their 20 eigenvalues. ``--pipeline`` also times the whole ``compute_normal_modes`` on
the tiled heavy-atom model (modes extended to all atoms).

Results go to the ``nma_scaling`` section of docs/performance.md.

Usage::

    python benchmarks/nma_scaling.py                       # all sizes, both layouts
    python benchmarks/nma_scaling.py --skip-prody-above 6000
    python benchmarks/nma_scaling.py --factorisers superlu cholmod   # needs cvxopt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib.resources import files

import numpy as np

N_MODES = 20
CUTOFF = 15.0
SIZES = (2000, 5000, 14000)
LAYOUTS = ("row", "grid")
FACTORISERS = ("auto", "superlu", "cholmod")

#: ProDy's times from the last run that included it (a record; ``--no-prody`` runs print it).
PRODY_EARLIER = """
ProDy was not re-run here. In the last run that included it (2026-11-21, load 3.1–4.6,
2 cores of an Intel Xeon), ProDy's total seconds were: row 1,926 nodes 10.4, 4,922 264.1, 13,910
stopped after 900; grid 1,926 15.2, 4,922 189.2, 13,910 470.2 (peak 736 MiB); its 20
eigenvalues agreed with ours to ≤ 3.7·10⁻¹⁰ relative.
"""

#: What the factoriser rows show (a record of the run that introduced CHOLMOD).
FACTORISER_NOTE = """
CHOLMOD (`pip install "cryomotion[nma-fast]"`, taken automatically from 1,000 degrees of
freedom when cvxopt imports) halves the modes of the compact 13,910-node grid (8.6 s to
4.6 s in all; 8.35 s to 4.11 s in the same command run just before) and saves 30–40 % on
the smaller grids; on the elongated row, whose LU fills in little, it saves 15 % at 4,922
and 13,910 nodes. The whole pipeline gains less where the interpolation to all atoms
dominates (row, 4,922 nodes: nothing). It needs 20–130 MiB more peak memory (cvxopt's
libraries and the copy of the lower triangle). The eigenvalues agree with
SuperLU's to ≤ 6·10⁻¹⁰ relative: to 10⁻¹³ on the grid; the lowest eigenvalue of the
13,910-node row is 1.2·10⁻⁸ max|H_ii|, and its difference, 2·10⁻¹⁶ absolute, is rounding.
"""

#: Solvers measured for the 13,910-node grid (a record, not re-measured): CHOLMOD was then
#: adopted as the optional factoriser (the ``cholmod`` rows of the table), the others not.
ALTERNATIVES = """
Solvers measured for the 13,910-node grid (41,730 degrees of freedom, ~48 springs a node),
all but CHOLMOD not adopted; 2026-12-04, CPU seconds of one process, load 6–9 on the 2
cores, scripts run by hand, `cryomotion.dynamics` unchanged. The current solver spends 3.6
s on the double-precision LU (38.1 M nonzeros in L + U) and 3.7 s on ARPACK's 82 solves (41
ms each).

- Minimum degree on the 13,910-node graph (3×3 blocks), expanded to the dof: same fill
  (38.0 M), factor 4.1 s. COLAMD on that graph: 100 M nonzeros, 22 s.
- SuperLU supernode relaxation (`relax` 5–150, `panel_size` 10–60): factor 3.6–3.9 s.
- ARPACK `ncv` 40 / 53 (default) / 70 / 90: 76 / 82 / 93 / 91 solves, 3.8–4.7 s.
- The 6 rigid-body modes (analytic translations, rotations) projected out, 20 eigenpairs
  asked for: 75 solves instead of 82.
- Single-precision LU, ARPACK, then block Rayleigh–Ritz refinement in double precision
  (basis widened by the preconditioned residuals): factor 2.5 s, solves no faster (3.4 s);
  the largest residual stalls near 10⁻⁷ max|H_ii| and takes 4 refinement steps (8 guard
  vectors) to reach the 10⁻⁸ of the double-precision path: 8.8 s against 7.5 s back to
  back (eigenvalues then agree to 5·10⁻¹³).
- LOBPCG with a smoothed-aggregation AMG preconditioner (pyamg 5.4.1 in a separate venv,
  rigid-body near-nullspace, 2 levels, 1,320 coarse dof), 32 vectors: 36 iterations from
  random vectors to a residual of 10⁻⁸ max|H_ii| (eigenvalues to 10⁻¹², subspace overlap
  1 − 10⁻¹³) but 43 s, pyamg's V-cycle looping over the 32 columns (2.2 s a cycle). One
  H·X alone costs 0.10 s, so 36 iterations cost ≥ 3.6 s whatever the cycle. Started from
  the Rayleigh–Ritz vectors of the coarse space (eigenvalues 93 % off), Jacobi smoothing:
  75 iterations.
- LOBPCG preconditioned by the LU of the shifted 10 Å-cutoff Hessian (8.5 M nonzeros,
  0.6 s): 60 iterations of 0.4 s, the residual falling 2.5× every 5 iterations (26.6 s).
- Sparse Cholesky of H - σI with cholespy 2.2.0 (a wheel bundling CHOLMOD; scikit-sparse
  has no wheel here): factor 11.6 s, solves 39 ms, ARPACK's 82 of them 3.4 s.
- Block shift-invert Krylov space on the double-precision LU (SuperLU solves 26 right-hand
  sides at once in 0.42 s, 16 ms each against 41 ms one at a time), 32 random vectors, full
  reorthogonalisation, Rayleigh–Ritz with H: depth 7 (224 vectors) to reach a residual of
  2.6·10⁻⁷ max|H_ii|, 7.3 s after the factor against ARPACK's 3.7 s.

Supernodal factorisers from binary wheels (CHOLMOD then became the optional factoriser, the
`cholmod` rows above); separate venv, NumPy 2.4.6, SciPy 1.17.1, one thread, ARPACK
unchanged with the candidate's solve as `OPinv`; the three rows run back to back at load
1.9–2.5, CPU seconds (wall about twice that: the process shared a core). PARDISO: pypardiso
0.4.7 on mkl 2026.2.1, LDLᵀ (`mtype` 2) in parallel-METIS order. CHOLMOD: version 3.0.6 as
bundled in the cvxopt 1.3.3 wheel, supernodal, AMD order.

| factor of H - σI | factor s | nnz(L) | 1 solve | 32 solves, each | ARPACK (82 solves) | sum |
|---|---:|---:|---:|---:|---:|---:|
| SuperLU (today) | 5.06 | 38.1 M (L + U) | 50 ms | 20 ms | 4.16 | 9.2 |
| PARDISO | 1.59 | 18.9 M | 29 ms | 6 ms | 2.68 | 4.3 |
| CHOLMOD | 1.26 | – | 29 ms | 29 ms | 2.73 | 4.0 |

- Both give the 20 eigenvalues of today's solver to 10⁻¹³ relative, subspace overlap
  1 − 10⁻¹² (residuals ≤ 5·10⁻¹⁴ max|H_ii|).
- PARDISO in METIS order (not the parallel one): factor 2.15 s. Two threads on the shared
  cores: factor 1.85 s CPU, ARPACK 6.4 s. Its single-precision factor (`iparm[27]`) solves
  in 20 ms but to 1.5·10⁻³ relative (σ is 10⁻⁶ max|H_ii|): ARPACK then misses the
  rigid-body modes (subspace overlap 0.84).
- Block shift-invert Krylov on PARDISO's block solves (8 ms a right-hand side in blocks of
  16, 11 ms in blocks of 8), full reorthogonalisation, Rayleigh–Ritz with the inverse:
  block 8, depth 16 (128 solves) 2.5 s to a residual of 7·10⁻⁷ max|H_ii|; depth 20
  (160 solves) 3.2 s to 8·10⁻¹¹; block 16, depth 12 (192 solves) 2.7 s to 10⁻⁷. ARPACK's
  2.7 s is no slower and reaches 10⁻¹⁴.
- ARPACK's `tol` 10⁻⁵ instead of 10⁻⁸: 68 solves instead of 82 (2.2 s on PARDISO), but
  the largest residual is then 6·10⁻⁹ max|H_ii|, too close to the 10⁻⁸ accepted.
- QDLDL 0.1.9 (AMD, not supernodal): factor 15.7 s. python-mumps 0.0.2, the only wheel,
  is built against NumPy 1 and does not import under NumPy 2; pydiso, pymumps, pyspral and
  scikit-sparse have no wheel; sksparse-minimal 0.3 is cholespy (above).
- Size: pypardiso pulls mkl (a 229 MB wheel; 721 MB installed with intel-openmp and tbb);
  cvxopt is a 21 MB wheel (61 MB of bundled libraries).

Either halves the modes (≈ 4 CPU s against ≈ 8, plus 0.7 s for the Hessian), but neither
reaches 3.5 s: the 82 one-vector solves alone cost 2.4 s, bound by reading the 18.9 M
nonzeros of the factor twice a solve, and the block methods measured cost as much.
"""


def adk():
    from cryomotion.structure.io import read_model

    return read_model(str(files("cryomotion") / "resources" / "adk_open.pdb"))


def offsets(copies: int, layout: str, extent: np.ndarray) -> np.ndarray:
    """(copies, 3) translations: a row along x, or a compact block filled layer by layer."""
    if layout == "row":
        cells = np.stack([np.arange(copies), np.zeros(copies), np.zeros(copies)], axis=1)
    else:
        side = int(np.ceil(copies ** (1 / 3)))
        grid = np.indices((side, side, side)).reshape(3, -1).T
        cells = grid[np.lexsort((grid[:, 0], grid[:, 1], grid[:, 2]))][:copies]
    return cells * extent


def tiled_model(copies: int, layout: str):
    """The AdK heavy-atom model repeated ``copies`` times (chains named by copy)."""
    from cryomotion.structure.model import AtomicModel

    model = adk()
    ca = model.coords[model.ca_index]
    shifts = offsets(copies, layout, np.ptp(ca, axis=0))
    chain_ids = np.repeat([f"{index:04d}" for index in range(copies)], model.n_atoms)
    return AtomicModel(
        coords=(model.coords[None] + shifts[:, None]).reshape(-1, 3),
        elements=np.tile(model.elements, copies),
        atom_names=np.tile(model.atom_names, copies),
        residue_names=np.tile(model.residue_names, copies),
        residue_numbers=np.tile(model.residue_numbers, copies),
        insertion_codes=np.tile(model.insertion_codes, copies),
        chain_ids=chain_ids,
        b_factors=np.tile(model.b_factors, copies),
        occupancies=np.tile(model.occupancies, copies),
        is_hetero=np.tile(model.is_hetero, copies),
    )


def tiled_ca(copies: int, layout: str) -> np.ndarray:
    model = adk()
    ca = model.coords[model.ca_index]
    shifts = offsets(copies, layout, np.ptp(ca, axis=0))
    return (ca[None] + shifts[:, None]).reshape(-1, 3)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(engine: str, copies: int, layout: str, repeats: int, factoriser: str) -> dict:
    """Run one engine in this process; return its timings, memory and eigenvalues."""
    os.environ["CRYOMOTION_FACTORISER"] = factoriser
    coords = tiled_ca(copies, layout) if engine != "pipeline" else None
    model = tiled_model(copies, layout) if engine == "pipeline" else None
    if engine == "prody":
        import prody

        prody.confProDy(verbosity="none")
    else:
        from cryomotion.dynamics.anm import compute_normal_modes
        from cryomotion.dynamics.eigensolver import nontrivial_modes
        from cryomotion.dynamics.elastic_network import anm_hessian
    baseline = peak_rss_mib()
    runs = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        if engine == "prody":
            anm = prody.ANM()
            anm.buildHessian(coords, cutoff=CUTOFF, sparse=True)
            built = time.perf_counter()
            anm.calcModes(N_MODES)
            eigenvalues = anm.getEigvals()
        elif engine == "ours":
            hessian = anm_hessian(coords, cutoff=CUTOFF)
            built = time.perf_counter()
            eigenvalues = nontrivial_modes(hessian, N_MODES).eigenvalues
        else:
            built = start
            eigenvalues = compute_normal_modes(model, n_modes=N_MODES, cutoff=CUTOFF).eigenvalues
        end = time.perf_counter()
        runs.append(
            {
                "hessian_s": built - start,
                "modes_s": end - built,
                "total_s": end - start,
                "cpu_s": time.process_time() - cpu,
            }
        )
        if len(runs) == 1:
            peak = peak_rss_mib()  # of one run: later repeats may overlap with its leftovers
    best = min(runs, key=lambda run: run["total_s"])
    return {
        "engine": engine,
        "factoriser": factoriser if engine != "prody" else None,
        "layout": layout,
        "nodes": int(copies * 214),
        "atoms": None if model is None else int(model.n_atoms),
        **best,
        "median_total_s": statistics.median(run["total_s"] for run in runs),
        "repeats": repeats,
        "peak_rss_mib": peak,
        "baseline_rss_mib": baseline,
        "eigenvalues": [float(v) for v in eigenvalues],
    }


def run_worker(
    engine: str,
    copies: int,
    layout: str,
    repeats: int,
    timeout: float | None = None,
    factoriser: str = "auto",
) -> dict:
    """Run ``worker`` in a fresh process; a run stopped at ``timeout`` s is marked so."""
    command = [sys.executable, __file__, "--worker", engine, "--copies", str(copies)]
    command += ["--layouts", layout, "--repeats", str(repeats), "--factoriser", factoriser]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"engine": engine, "layout": layout, "nodes": copies * 214, "stopped_s": timeout}
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{cores} cores, {model}, {platform.system()} {platform.release()}; load {load}"


def versions() -> str:
    import prody
    import scipy

    try:
        import cvxopt

        cvx = f", cvxopt {cvxopt.__version__}"
    except ImportError:
        cvx = ", no cvxopt"
    return (
        f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"ProDy {prody.__version__}{cvx}"
    )


def cell(result: dict | None, key: str, fmt: str) -> str:
    if result is None:
        return "skipped"
    if "stopped_s" in result:
        return f"> {result['stopped_s']:.0f} (stopped)" if key == "total_s" else "–"
    return format(result[key], fmt)


def report(results: list[dict], args: argparse.Namespace, started: str) -> str:
    lines = [
        "## Normal modes: scaling of the elastic network solver",
        "",
        f"Lowest {N_MODES} non-trivial ANM modes, cutoff {CUTOFF:g} Å, on copies of AdK Cα "
        "translated by their bounding box so that they touch (`row`: side by side along x; "
        "`grid`: a compact 3D block). Ours: `cryomotion.dynamics` (KD-tree neighbour list, "
        "vectorised sparse Hessian, shift-invert Lanczos on a sparse factor of H - σI by the "
        "factoriser named: SciPy's SuperLU LU in minimum-degree order, or CHOLMOD's "
        "supernodal Cholesky from cvxopt, `pip install cryomotion[nma-fast]`; `auto` takes "
        "CHOLMOD from 1,000 degrees of freedom when cvxopt imports); "
        "ProDy: `ANM.buildHessian(sparse=True)` + `calcModes(20)`. Wall-clock seconds, best "
        f"of {args.repeats} for ours, one run for ProDy; peak resident memory of the "
        "process that ran it, after its first run (its baseline after imports in brackets); "
        "ours' CPU seconds in "
        "brackets (a busy machine stretches wall-clock time, not CPU time). Eigenvalue "
        "difference: the largest relative difference of the 20 eigenvalues from ProDy's, or, "
        f"where ProDy did not run, from those of `{args.factorisers[0]}` (marked so).",
        "",
        f"Machine: {machine()}. {versions()}. Run {started}"
        + (f" (ProDy's runs: {args.prody_started})" if args.prody_from else "")
        + (
            "; ProDy not run."
            if args.no_prody
            else f"; ProDy runs stopped after {args.prody_timeout:.0f} s"
            + (f", skipped above {args.skip_prody_above} nodes." if args.skip_prody_above else ".")
        ),
        "",
        "| layout | nodes | factoriser | ours: Hessian s | ours: modes s | ours: total s "
        "| ours: peak MiB "
        + (
            ""
            if args.no_prody
            else "| ProDy: Hessian s | ProDy: modes s | ProDy: total s | ProDy: peak MiB "
            "| speed-up "
        )
        + "| eigenvalue difference |",
        "|---|---:|---|---:|---:|---:|---:|" + ("" if args.no_prody else "---:|" * 5) + "---:|",
    ]
    rows = [
        (lay, size, fac) for lay in args.layouts for size in args.sizes for fac in args.factorisers
    ]
    for layout, size, factoriser in rows:
        ours = next(
            r
            for r in results
            if r["engine"] == "ours"
            and r["layout"] == layout
            and r["requested"] == size
            and r["factoriser"] == factoriser
        )
        theirs = next(
            (
                r
                for r in results
                if r["engine"] == "prody" and r["layout"] == layout and r["requested"] == size
            ),
            None,
        )
        memory = f"{ours['peak_rss_mib']:.0f} ({ours['baseline_rss_mib']:.0f})"
        finished = theirs is not None and "stopped_s" not in theirs
        their_memory = (
            f"{theirs['peak_rss_mib']:.0f} ({theirs['baseline_rss_mib']:.0f})"
            if finished
            else cell(theirs, "peak_rss_mib", ".0f")
        )
        speedup = "–"
        if theirs is not None:
            their_total = theirs.get("total_s", theirs.get("stopped_s"))
            bound = "" if finished else "> "
            speedup = f"{bound}{their_total / ours['total_s']:.0f}×"
        difference = "–"
        reference = next(
            r
            for r in results
            if r["engine"] == "ours"
            and r["layout"] == layout
            and r["requested"] == size
            and r["factoriser"] == args.factorisers[0]
        )
        if finished:
            a, b = np.array(ours["eigenvalues"]), np.array(theirs["eigenvalues"])
            difference = f"{np.max(np.abs(a - b) / b):.1e}"
        elif reference is not ours:
            a, b = np.array(ours["eigenvalues"]), np.array(reference["eigenvalues"])
            difference = f"{np.max(np.abs(a - b) / b):.1e} (vs {args.factorisers[0]})"
        lines.append(
            f"| {layout} | {ours['nodes']:,} | {factoriser} | {ours['hessian_s']:.2f} "
            f"| {ours['modes_s']:.2f} "
            f"| **{ours['total_s']:.2f}** ({ours['cpu_s']:.2f}) | {memory} "
            + (
                ""
                if args.no_prody
                else f"| {cell(theirs, 'hessian_s', '.1f')} "
                f"| {cell(theirs, 'modes_s', '.1f')} | {cell(theirs, 'total_s', '.1f')} "
                f"| {their_memory} | {speedup} "
            )
            + f"| {difference} |"
        )
    pipeline = [r for r in results if r["engine"] == "pipeline"]
    if pipeline:
        lines += [
            "",
            "The whole `compute_normal_modes` on the tiled heavy-atom model (nodes, Hessian, "
            "modes, kernel interpolation to every atom, orthonormalisation):",
            "",
            "| layout | nodes | atoms | factoriser | total s | peak MiB |",
            "|---|---:|---:|---|---:|---:|",
        ]
        for r in pipeline:
            lines.append(
                f"| {r['layout']} | {r['nodes']:,} | {r['atoms']:,} | {r['factoriser']} "
                f"| {r['total_s']:.2f} "
                f"| {r['peak_rss_mib']:.0f} |"
            )
    if args.no_prody:
        lines += ["", *PRODY_EARLIER.strip().splitlines()]
    if args.no_prody and len(args.factorisers) > 1:
        lines += ["", *FACTORISER_NOTE.strip().splitlines()]
    lines += ["", *ALTERNATIVES.strip().splitlines()]
    lines += ["", f"Command: `python benchmarks/nma_scaling.py {' '.join(sys.argv[1:])}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument(
        "--skip-prody-above", type=int, default=0, help="nodes; 0 runs ProDy at every size"
    )
    parser.add_argument("--no-prody", action="store_true", help="do not run ProDy at all")
    parser.add_argument(
        "--prody-timeout", type=float, default=1200.0, help="s; a longer ProDy run is stopped"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours (best is kept)")
    parser.add_argument(
        "--factorisers",
        nargs="+",
        choices=FACTORISERS,
        default=["auto"],
        help="factorisers of ours, each run in turn ('cholmod' needs cvxopt)",
    )
    parser.add_argument("--factoriser", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", action="store_true", help="also time the all-atom pipeline")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    parser.add_argument("--save-json", help="also write every run's raw results to this file")
    parser.add_argument(
        "--prody-from",
        help="take ProDy's results from a --save-json file of an earlier run (its numbers do "
        "not depend on cryomotion) instead of running ProDy again",
    )
    parser.add_argument("--worker", choices=("ours", "prody", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.copies, args.layouts[0], args.repeats, args.factoriser)
        print(json.dumps(result))
        return

    started = time.strftime("%Y-%m-%d %H:%M")
    results = []
    earlier = {}
    if args.prody_from:
        with open(args.prody_from) as handle:
            saved = json.load(handle)
        earlier = {
            (r["layout"], r["requested"]): r for r in saved["results"] if r["engine"] == "prody"
        }
        args.prody_started = saved["started"]
        args.prody_timeout = saved["prody_timeout"]
    for layout in args.layouts:
        for size in args.sizes:
            copies = max(1, round(size / 214))
            engines = [("ours", args.repeats, None, f) for f in args.factorisers]
            if args.no_prody:
                pass
            elif not args.skip_prody_above or copies * 214 <= args.skip_prody_above:
                engines.append(("prody", 1, args.prody_timeout, "auto"))
            if args.pipeline:
                engines += [("pipeline", 1, None, f) for f in args.factorisers]
            for engine, repeats, timeout, factoriser in engines:
                if engine == "prody" and args.prody_from:
                    if (layout, size) in earlier:
                        results.append(earlier[(layout, size)])
                    continue
                result = run_worker(engine, copies, layout, repeats, timeout, factoriser)
                result["requested"] = size
                results.append(result)
                if "stopped_s" in result:
                    print(
                        f"{layout:>4} {result['nodes']:>6} nodes  {engine:>8}: stopped", flush=True
                    )
                    continue
                print(
                    f"{layout:>4} {result['nodes']:>6} nodes  {engine:>8} {factoriser:>7}: "
                    f"{result['total_s']:8.2f} s  (Hessian {result['hessian_s']:.2f} s, "
                    f"modes {result['modes_s']:.2f} s, CPU {result['cpu_s']:.2f} s)  "
                    f"peak {result['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
    if args.save_json:
        with open(args.save_json, "w") as handle:
            saved = {"started": started, "prody_timeout": args.prody_timeout, "results": results}
            json.dump({**saved, "machine": machine()}, handle)
    text = report(results, args, started)
    print(text)
    if not args.no_write:
        from report import write_section

        print(f"written to {write_section('nma_scaling', text)}")


if __name__ == "__main__":
    main()

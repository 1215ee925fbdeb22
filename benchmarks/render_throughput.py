"""Throughput and accuracy of the atom renderer (``cryomotion.imaging.renderer``).

For (scatterers, box) = (214, 64) [coarse: one bead per AdK residue], (1656, 64) and
(1656, 128) [AdK heavy atoms, 5-Gaussian form factors], (20000, 256) and (100000, 320)
[AdK tiled, about a 14,000-residue complex], batch 64 (8 for the largest), with each of the
two projection methods (``projection="direct"``: the exact Fourier sum; ``"gridding"``: the
non-uniform FFT) and the one ``projection="auto"`` picks:

* images/s for the forward pass and for forward + backward (gradient w.r.t. coordinates);
* the table-product FLOPs per image and the rate they run at, next to the machine's float32
  matmul rate (a large ``torch.mm``);
* the error against an exact band-limited reference written independently in NumPy float64:
  the analytic Fourier transform of the form factors summed over atoms at every DFT frequency
  (|k| ≤ D/2, ±D/2 terms weighted 1/2), summed back with explicit exponentials; the gradient of
  Σ W·image for a random W from the same closed form. Relative L2 errors of the image and of
  the coordinate gradient (not for the 100,000-atom case: the reference would need GBs).

Results go to the ``render_throughput`` section of docs/performance.md.

Usage::

    python benchmarks/render_throughput.py                 # CPU, 2 threads
    python benchmarks/render_throughput.py --device cuda
"""

from __future__ import annotations

import os

# On a shared machine, OpenMP threads that spin at barriers while another process holds the
# other core make every parallel region wait a scheduler time slice; passive waiting avoids
# that. Must be set before the OpenMP runtime starts (i.e. before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import itertools
import math
import platform
import statistics
import time
from importlib.resources import files

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.structure.form_factors import scattering_table
from cryomotion.structure.io import read_model
from cryomotion.structure.model import AtomicModel
from report import write_section

CASES = (  # (label, scatterers, box, pixel size Å, coarse, largest batch)
    ("AdK coarse, 1 bead/residue", 214, 64, 1.5, True, None),
    ("AdK heavy atoms", 1656, 64, 1.5, False, None),
    ("AdK heavy atoms", 1656, 128, 1.0, False, None),
    ("AdK ×12 tiled", 20000, 256, 1.0, False, None),
    ("AdK ×61 tiled", 100000, 320, 1.5, False, 8),
)
PROJECTIONS = ("direct", "gridding")
REFERENCE_LIMIT = 30000  # scatterers: beyond, no float64 reference (memory)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process (Linux; empty elsewhere)."""
    seconds: dict[str, float] = {}
    try:
        tick = os.sysconf("SC_CLK_TCK")
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            seconds[tid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except (OSError, ValueError, IndexError):
        return {}
    return seconds


def timed(step, device: torch.device, min_seconds: float, min_repeats: int = 5):
    """Per call of ``step``, after two warm-up calls: (wall seconds list, process CPU seconds
    list, CPU seconds of the busiest thread per call or None)."""
    for _ in range(2):
        step()
    synchronize(device)
    wall: list[float] = []
    cpu: list[float] = []
    threads_before = thread_cpu_seconds()
    start = time.perf_counter()
    while len(wall) < min_repeats or time.perf_counter() - start < min_seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        synchronize(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    threads_after = thread_cpu_seconds()
    busiest = max(
        (threads_after[t] - threads_before.get(t, 0.0) for t in threads_after), default=0.0
    )
    return wall, cpu, (busiest / len(wall) if busiest > 0 else None)


def matmul_rate(device: torch.device) -> float:
    """Measured float32 GFLOP/s of a 4096³ torch.mm."""
    n = 4096
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    wall, _, _ = timed(lambda: torch.mm(a, b), device, min_seconds=2.0, min_repeats=3)
    return 2 * n**3 / min(wall) / 1e9


def tiled_model(model: AtomicModel, n_atoms: int, box: int, pixel_size: float) -> AtomicModel:
    """Copies of ``model`` on a grid inside the box, truncated to ``n_atoms`` atoms."""
    centred = model.coords - model.coords.mean(0)
    copies = math.ceil(n_atoms / model.n_atoms)
    per_axis = math.ceil(copies ** (1 / 3))
    spacing = box * pixel_size * 0.6 / per_axis
    offsets = [
        (np.array(index) - (per_axis - 1) / 2) * spacing
        for index in np.ndindex(per_axis, per_axis, per_axis)
    ][:copies]
    coords = np.concatenate([centred + offset for offset in offsets])[:n_atoms]
    fields = {
        name: np.concatenate([getattr(model, name)] * copies)[:n_atoms]
        for name in (
            "elements", "atom_names", "residue_names", "insertion_codes", "chain_ids",
            "b_factors", "occupancies", "is_hetero",
        )
    }  # fmt: skip
    residue_numbers = np.concatenate([model.residue_numbers + i * 10000 for i in range(copies)])[
        :n_atoms
    ]
    return AtomicModel(coords=coords, residue_numbers=residue_numbers, **fields)


def case_model(adk: AtomicModel, n_atoms: int, box: int, pixel_size: float) -> AtomicModel:
    model = adk if n_atoms <= adk.n_atoms else tiled_model(adk, n_atoms, box, pixel_size)
    return model.with_coords(model.coords - model.coords.mean(0) + (box // 2) * pixel_size)


def scatterers(model: AtomicModel, coarse: bool, sigma: float = 2.0):
    """(coords (S, 3), a (S, G), b (S, G), weights (S,)) of what is rendered, from the model
    alone: atoms with their form factors, or Cα beads with the residue totals."""
    _, a, b, type_index = scattering_table(model.elements)
    if not coarse:
        return model.coords, a[type_index], b[type_index], np.ones(model.n_atoms)
    totals = np.bincount(model.residue_index, a.sum(1)[type_index], model.n_residues)
    n = model.n_residues
    bead_b = np.full((n, 1), 8 * math.pi**2 * sigma**2)
    return model.coords[model.ca_index], np.ones((n, 1)), bead_b, totals


def reference(coords, a, b, weights, rotation, center, box, pixel_size, image_weights):
    """Exact band-limited image (D, D) and d(Σ W·image)/d(coords) (S, 3), NumPy float64."""
    half = box // 2
    k = np.arange(-half, half + 1)
    fold = np.ones(len(k))
    if box % 2 == 0:
        fold[[0, -1]] = 0.5
    q = k / (box * pixel_size)
    q2 = q[:, None] ** 2 + q[None, :] ** 2
    projected = (coords - center) @ rotation.T  # x_mic = R (x - c); image along z
    x, y = projected[:, 0], projected[:, 1]
    phase_y = np.exp(-2j * np.pi * np.outer(y, q))  # (S, 2h+1)
    phase_x = np.exp(-2j * np.pi * np.outer(x, q))
    pixels = (np.arange(box) - half) * pixel_size
    inverse = np.exp(2j * np.pi * np.outer(pixels, q))  # (D, 2h+1)
    spectrum = np.zeros((len(k), len(k)), dtype=complex)
    grad_xy = np.zeros((len(coords), 2))
    # Σ_n W[n] exp(2πi q·r_n): the functional's transform, for the gradient.
    functional = (inverse.T @ image_weights @ inverse) * fold[:, None] * fold[None, :]
    functional /= (box * pixel_size) ** 2
    keys = np.concatenate([a, b], axis=1)
    _, group, inverse_group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    for g, first in enumerate(group):
        members = np.nonzero(inverse_group.reshape(-1) == g)[0]
        form = (a[first][:, None, None] * np.exp(-b[first][:, None, None] * q2 / 4)).sum(0)
        ey = phase_y[members] * weights[members, None]
        spectrum += form * (ey.T @ phase_x[members])
        kernel = form * functional
        for axis, factor in ((0, q[None, :]), (1, q[:, None])):
            weighted = (-2j * np.pi * factor) * kernel
            grad_xy[members, axis] = np.real(((ey @ weighted) * phase_x[members]).sum(1))
    spectrum *= fold[:, None] * fold[None, :]
    image = (inverse @ spectrum @ inverse.T).real / (box * pixel_size) ** 2
    return image, grad_xy @ rotation[:2]


def run_case(label, n_atoms, box, pixel_size, coarse, adk, device, batch, min_seconds, projection):
    model = case_model(adk, n_atoms, box, pixel_size)
    auto = AtomRenderer.from_model(model, box, pixel_size, coarse=coarse).projection
    renderer = AtomRenderer.from_model(
        model, box, pixel_size, coarse=coarse, projection=projection
    ).to(device)
    coords = torch.tensor(model.coords, dtype=torch.float32, device=device)
    rotation = torch.tensor(
        Rotation.random(batch, random_state=0).as_matrix(), dtype=torch.float32, device=device
    )
    shifts = torch.randn(batch, 2, device=device, generator=None)
    weights = torch.randn(batch, box, box, device=device)
    batch_coords = coords.expand(batch, -1, -1).contiguous().requires_grad_()

    def forward():
        with torch.no_grad():
            renderer(batch_coords, rotation, shifts)

    def forward_backward():
        batch_coords.grad = None
        (renderer(batch_coords, rotation, shifts) * weights).sum().backward()

    fwd, _, fwd_busiest = timed(forward, device, min_seconds)
    fwd_bwd, _, fwd_bwd_busiest = timed(forward_backward, device, min_seconds)
    cpu_rates = {}
    if device.type == "cpu":
        # With cores of our own, a batch would take about as long as its busiest thread
        # computes (no thread waits for a descheduled one).
        cpu_rates["fwd_own"] = batch / fwd_busiest if fwd_busiest else float("nan")
        cpu_rates["fwd_bwd_own"] = batch / fwd_bwd_busiest if fwd_bwd_busiest else float("nan")
        # One thread, timed by its CPU time: the rate of one core that is ours alone, which
        # other processes on a shared machine barely change.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        cpu_rates["fwd_cpu"] = batch / statistics.median(timed(forward, device, min_seconds)[1])
        cpu_rates["fwd_bwd_cpu"] = batch / statistics.median(
            timed(forward_backward, device, min_seconds)[1]
        )
        torch.set_num_threads(threads)

    # Accuracy on two images, float32 renderer against the float64 reference.
    center = renderer.rotation_center.double().cpu().numpy()
    image_errors, grad_errors = [], []
    s_coords, s_a, s_b, s_weights = scatterers(model, coarse)
    for i in range(2 if n_atoms <= REFERENCE_LIMIT else 0):
        x = coords.detach().clone().requires_grad_()
        image = renderer(x, rotation[i : i + 1], shifts[i : i + 1])
        (image[0] * weights[i]).sum().backward()
        r = rotation[i].double().cpu().numpy()
        # The shift moves the projection by +s: fold it into the reference's positions.
        shift3 = np.zeros(3)
        shift3[:2] = shifts[i].double().cpu().numpy()
        ref_image, ref_grad = reference(
            s_coords + r.T @ shift3, s_a, s_b, s_weights, r, center, box, pixel_size,
            weights[i].double().cpu().numpy(),
        )  # fmt: skip
        got_image = image[0].detach().double().cpu().numpy()
        got_grad = x.grad.double().cpu().numpy()
        if coarse:
            got_grad = got_grad[model.ca_index]
        image_errors.append(np.linalg.norm(got_image - ref_image) / np.linalg.norm(ref_image))
        grad_errors.append(np.linalg.norm(got_grad - ref_grad) / np.linalg.norm(ref_grad))

    half = box // 2 + 1
    n = renderer.n_scatterers
    flops_forward = 2 * (2 * half) * n * (2 * half)
    flops_backward = 2 * n * (2 * half) * (4 * half) + 2 * n * 2 * (2 * half)
    return {
        "label": label,
        "projection": projection,
        "auto": auto,
        "batch": batch,
        "scatterers": n,
        "box": box,
        "pixel_size": pixel_size,
        "fwd": batch / statistics.median(fwd),
        "fwd_best": batch / min(fwd),
        "fwd_bwd": batch / statistics.median(fwd_bwd),
        "fwd_bwd_best": batch / min(fwd_bwd),
        **cpu_rates,
        "flops_fwd": flops_forward,
        "flops_fwd_bwd": flops_forward + flops_backward,
        "image_error": max(image_errors, default=float("nan")),
        "grad_error": max(grad_errors, default=float("nan")),
    }


def markdown(results, device, threads, rate, batch, load) -> str:
    on_cpu = device.type == "cpu"
    where = (
        f"{cpu_model()}, {threads} thread{'s' if threads > 1 else ''}"
        if on_cpu
        else torch.cuda.get_device_name(device)
    )
    lines = [
        "## Renderer throughput (`benchmarks/render_throughput.py`)",
        "",
        f"Device: {where}; torch {torch.__version__}; batch {batch}; float32; "
        f"measured `torch.mm` (4096³, float32): **{rate:.0f} GFLOP/s**. "
        f"Run {time.strftime('%Y-%m-%d %H:%M')}"
        + (f", load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min)." if on_cpu else "."),
        "",
        "Methods. *direct*: projection evaluated in Fourier space, per scatterer type one real "
        "product of cos/sin tables, (2K × n)·(n × 2K) with K = D/2+1, gives the whole "
        "half-plane spectrum; backward = two more products of that size plus row-wise dots; "
        "the tables are built and rebuilt in cache-sized blocks. MFLOP/img counts these "
        "products (forward 8K²n, forward+backward 24K²n); GFLOP/s is their rate in the median "
        "wall-clock fwd+bwd. *gridding*: non-uniform FFT (`cryomotion.imaging.gridding`): each "
        "scatterer spread with a 5 × 5-point exponential-of-semicircle kernel onto a 2× "
        "oversampled grid per scatterer type, FFT, crop to |k| ≤ D/2, form factor and kernel "
        "deconvolution in one weight; cost ~ 25n + T (2D)² log D. *auto*: the method "
        '`AtomRenderer(projection="auto")` (the default) picks for the case from its cost '
        "model (`benchmarks/projection_crossover.py`); float64 inputs always take *direct*.",
        "",
        "Images/s = batch / time per batch. Backward = gradient w.r.t. the coordinates of "
        "Σ W·image. Errors: relative L2 against the exact band-limited float64 NumPy "
        "reference (two images, worst shown).",
    ]
    if on_cpu:
        lines += [
            "",
            "The machine is shared, so three measures: *wall* (median, best batch in "
            f"brackets) with {threads} threads, which measures our share of the cores when "
            "other processes run; *own cores*: batch / CPU time of the busiest of our threads, "
            "the wall time to expect with the cores to ourselves; *1 core*: one thread timed "
            "by its CPU time. OpenMP threads wait passively "
            f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}).",
        ]
    header = (
        "| case | scatterers | box (px) | Å/px | method | batch | fwd img/s wall |"
        " fwd+bwd img/s wall |"
    )
    rule = "|---|---:|---:|---:|---|---:|---:|---:|"
    if on_cpu:
        header += (
            f" fwd, {threads} own cores | fwd+bwd, {threads} own cores | fwd, 1 core |"
            " fwd+bwd, 1 core |"
        )
        rule += "---:|---:|---:|---:|"
    header += " MFLOP/img fwd+bwd | GFLOP/s | image error | gradient error |"
    rule += "---:|---:|---:|---:|"
    lines += ["", header, rule]
    for r in results:
        method = r["projection"] + (" (auto)" if r["projection"] == r["auto"] else "")
        row = (
            f"| {r['label']} | {r['scatterers']} | {r['box']} | {r['pixel_size']} | {method} | "
            f"{r['batch']} | {r['fwd']:,.0f} ({r['fwd_best']:,.0f}) | "
            f"{r['fwd_bwd']:,.0f} ({r['fwd_bwd_best']:,.0f}) |"
        )
        if on_cpu:
            row += (
                f" {r['fwd_own']:,.0f} | {r['fwd_bwd_own']:,.0f} | {r['fwd_cpu']:,.0f} |"
                f" {r['fwd_bwd_cpu']:,.0f} |"
            )
        if r["projection"] == "direct":
            row += (
                f" {r['flops_fwd_bwd'] / 1e6:.1f} | {r['flops_fwd_bwd'] * r['fwd_bwd'] / 1e9:.0f} |"
            )
        else:
            row += " – | – |"
        if math.isnan(r["image_error"]):
            row += " – | – |"
        else:
            row += f" {r['image_error']:.1e} | {r['grad_error']:.1e} |"
        lines.append(row)
    if not on_cpu:
        return "\n".join(lines)
    by_key = {(r["scatterers"], r["box"]): r for r in results if r["projection"] == r["auto"]}
    pairs = {}
    for r in results:
        pairs.setdefault((r["label"], r["scatterers"], r["box"]), {})[r["projection"]] = r
    speedups = [
        f"- {label}, {n:,} scatterers, {box} px: gridding / direct fwd+bwd "
        f"{p['gridding']['fwd_bwd_own'] / p['direct']['fwd_bwd_own']:.2f}× with {threads} own "
        f"cores, {p['gridding']['fwd_bwd_cpu'] / p['direct']['fwd_bwd_cpu']:.2f}× on 1 core "
        f"(forward {p['gridding']['fwd_own'] / p['direct']['fwd_own']:.2f}×); auto picks "
        f"{p['direct']['auto']}."
        for (label, n, box), p in pairs.items()
        if len(p) == 2
    ]
    if speedups:
        lines += ["", "Gridding against the direct sum (ratios of images/s):", "", *speedups]
    checks = []
    atoms = by_key.get((1656, 64))
    if atoms is not None:
        accurate = atoms["image_error"] < 1e-3 and atoms["grad_error"] < 1e-2
        checks.append(
            f"- AdK heavy atoms, 64 px ({atoms['projection']}, auto's choice), target ≥ 1,000 "
            "img/s fwd+bwd: "
            f"{atoms['fwd_bwd_own']:,.0f} with {threads} own cores, "
            f"{atoms['fwd_bwd']:,.0f} wall ({atoms['fwd_bwd_best']:,.0f} best batch), "
            f"{atoms['fwd_bwd_cpu']:,.0f} on 1 core. Accuracy target (image < 0.1 %, "
            f"gradient < 1 %): {atoms['image_error']:.1e}, {atoms['grad_error']:.1e}, "
            f"{'met' if accurate else 'MISSED'}."
        )
    coarse = by_key.get((214, 64))
    if coarse is not None:
        checks.append(
            f"- Coarse mode (214 beads), 64 px ({coarse['projection']}, auto's choice), target "
            "≥ 5,400 img/s (3× cryoSPHERE's ~1,800): "
            f"fwd+bwd {coarse['fwd_bwd_own']:,.0f} with {threads} own cores, "
            f"{coarse['fwd_bwd']:,.0f} wall, {coarse['fwd_bwd_cpu']:,.0f} on 1 core; forward "
            f"alone {coarse['fwd_own']:,.0f}, {coarse['fwd']:,.0f} wall, "
            f"{coarse['fwd_cpu']:,.0f} on 1 core."
        )
    if atoms is not None and coarse is not None:
        checks.append(
            "- All atoms at the coarse model's speed (64 px, auto's choices): all-atom / coarse "
            f"fwd+bwd {atoms['fwd_bwd_own'] / coarse['fwd_bwd_own']:.2f} with {threads} own "
            f"cores, {atoms['fwd_bwd_cpu'] / coarse['fwd_bwd_cpu']:.2f} on 1 core."
        )
    lines += ["", "Targets:", "", *checks]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing per case")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--projections", nargs="+", default=PROJECTIONS, choices=PROJECTIONS,
        help="projection methods to time (default both)",
    )  # fmt: skip
    parser.add_argument(
        "--cases", type=int, nargs="*", help=f"indices into the {len(CASES)} cases (default all)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    adk = read_model(files("cryomotion") / "resources" / "adk_open.pdb")
    load = os.getloadavg()
    rate = matmul_rate(device)
    results = []
    selected = [CASES[i] for i in args.cases] if args.cases else CASES
    for (label, n_atoms, box, pixel_size, coarse, largest), projection in itertools.product(
        selected, args.projections
    ):
        batch = min(args.batch, largest or args.batch)
        result = run_case(
            label, n_atoms, box, pixel_size, coarse, adk, device, batch, args.seconds, projection
        )
        results.append(result)
        print(
            f"{label:28s} n={result['scatterers']:6d} D={box:4d} {projection:8s}: "
            f"fwd {result['fwd']:9,.0f} img/s, fwd+bwd {result['fwd_bwd']:9,.0f} img/s "
            f"(own cores {result.get('fwd_own', 0):,.0f}, {result.get('fwd_bwd_own', 0):,.0f}; "
            f"1 core {result.get('fwd_cpu', 0):,.0f}, {result.get('fwd_bwd_cpu', 0):,.0f}), "
            f"image err {result['image_error']:.1e}, grad err {result['grad_error']:.1e}",
            flush=True,
        )
    text = markdown(results, device, args.threads, rate, args.batch, load)
    print(text)
    if not args.no_write:
        print(f"written to {write_section('render_throughput', text)}")


if __name__ == "__main__":
    main()

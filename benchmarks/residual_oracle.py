"""Can the images teach rigid segments the internal change they miss? An oracle test.

On the hinge path the domains also change inside (the internal difference of the two
crystal structures, added along the path): six learned rigid segments fitted to every true
frame leave 0.70 Å (Cα, median), and the −10 dB target of issue 18 (0.5 Å) needs less. The
obvious richer deformation is rigid segments plus a learned displacement D whose amplitude
grows along the path. This benchmark asks whether D can be learned from the images at all,
with everything else given: each particle's true frame, pose, shift and CTF, its frame's
segments fitted rigidly (M_f, ``information_limit.ceiling_models``) and the amplitude
s_f = f/(F − 1). D (one 3-vector per residue, or per atom) is fitted to all the images by
Adam on the exact Gaussian likelihood (the simulator's σ, the cropped noise's σ at a
smaller box), with a chain-smoothness restraint λ·Σ|D_Cα,i+1 − D_Cα,i|² (Å⁻²); the score is
the ceiling of M_f + s_f·D against the true frames (median over the particles) and the
cosine of D with the least-squares D* of the true residuals. With learned segments and
amplitudes as well, no method can do better than this.

Usage::

    python benchmarks/residual_oracle.py --run /tmp/information_limit/snr-10dB/unit/segments
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryomotion.imaging.fourier import cropped_noise_std, fourier_crop
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.train.results import load_run
from information_limit import ceiling_models
from report import write_section


def residual_ceiling(residuals: np.ndarray, ca: np.ndarray, frame_index: np.ndarray) -> float:
    """Median over the particles of the Cα RMS of their frame's residual (F, atoms, 3)."""
    per_frame = np.sqrt((residuals[:, ca] ** 2).sum(-1).mean(-1))
    return float(np.median(per_frame[frame_index]))


def fit_residual(
    run_dir: Path,
    box: int,
    per: str,
    smoothness: float,
    epochs: int,
    lr: float = 0.01,
    batch: int = 100,
    seed: int = 0,
) -> dict:
    """Fit D (one 3-vector per "residue" or "atom", ``per``) on the images of the run's
    dataset at ``box`` px; the rigid and oracle ceilings (Å) and, per epoch, the ceiling
    with the learned D and its cosine to the oracle's."""
    data = Path(str(run_dir).rsplit("/unit/", 1)[0]) / "data"
    with np.load(data / "ground_truth.npz", allow_pickle=False) as saved:
        truth = {key: saved[key] for key in saved.files}
    frames = truth["frame_coords"].astype(np.float64)
    frame_index = truth["frame_index"]
    reference = load_run(run_dir).reference
    models = ceiling_models("segments", run_dir, data / "ground_truth.npz")
    ca = reference.ca_index[reference.ca_index >= 0]
    residuals = frames - models
    amplitude = np.linspace(0.0, 1.0, len(frames))
    oracle = np.einsum("f,fai->ai", amplitude, residuals) / (amplitude @ amplitude)
    with mrcfile.mmap(data / "particles.mrcs", mode="r", permissive=True) as mrc:
        images = torch.as_tensor(np.array(mrc.data, dtype=np.float32))
        pixel_size = float(mrc.voxel_size.x)
    full = images.shape[-1]
    noise_std = float(truth["noise_std"])
    if box != full:
        images = fourier_crop(images, box)
        noise_std = cropped_noise_std(noise_std, full, box)
    renderer = AtomRenderer.from_model(reference, box, pixel_size * full / box)
    rotations = torch.as_tensor(truth["rotations"]).float()
    shifts = torch.as_tensor(truth["shifts"]).float()
    ctf = torch.as_tensor(truth["ctf"]).float()
    models_t = torch.as_tensor(models).float()
    amplitude_t = torch.as_tensor(amplitude).float()
    index_t = torch.as_tensor(frame_index)
    owner = torch.as_tensor(reference.residue_index) if per == "residue" else None
    count = reference.n_residues if per == "residue" else reference.n_atoms
    values = torch.zeros(count, 3, requires_grad=True)

    def displacement() -> torch.Tensor:
        return values[owner] if owner is not None else values

    optimizer = torch.optim.Adam([values], lr=lr)
    rng = np.random.default_rng(seed)
    ca_t = torch.as_tensor(ca)
    n = len(frame_index)
    scores = []
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(n)
        for first in range(0, n, batch):
            rows = torch.as_tensor(order[first : first + batch])
            frame = index_t[rows]
            coords = models_t[frame] + amplitude_t[frame][:, None, None] * displacement()[None]
            rendered = renderer(coords, rotations[rows], shifts[rows], ctf[rows])
            # the whole dataset's negative log likelihood, estimated from the batch
            nll = (rendered - images[rows]).square().sum() / (2 * noise_std**2) * n / len(rows)
            chain = displacement()[ca_t]
            loss = nll + smoothness * (chain[1:] - chain[:-1]).square().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            learned = displacement().double().numpy()
        cosine = (learned[ca] * oracle[ca]).sum() / np.sqrt(
            (learned[ca] ** 2).sum() * (oracle[ca] ** 2).sum() + 1e-30
        )
        left = residuals - amplitude[:, None, None] * learned
        scores.append((residual_ceiling(left, ca, frame_index), float(cosine)))
    return {
        "rigid": residual_ceiling(residuals, ca, frame_index),
        "oracle": residual_ceiling(residuals - amplitude[:, None, None] * oracle, ca, frame_index),
        "scores": scores,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="a segments run of information_limit.py"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = [
        (32, "residue", 0.0),
        (32, "residue", 1.0),
        (32, "residue", 10.0),
        (32, "residue", 100.0),
        (32, "atom", 0.0),
        (64, "residue", 0.0),
        (64, "residue", 10.0),
        (64, "atom", 0.0),
    ]
    rows = []
    for box, per, smoothness in cases:
        result = fit_residual(args.run, box, per, smoothness, args.epochs)
        best = min(range(len(result["scores"])), key=lambda k: result["scores"][k][0])
        rows.append((box, per, smoothness, result, best))
        print(
            box,
            per,
            smoothness,
            result["rigid"],
            result["oracle"],
            result["scores"][best],
            best + 1,
            result["scores"][-1],
            flush=True,
        )
    rigid, oracle = rows[0][3]["rigid"], rows[0][3]["oracle"]
    lines = [
        "## Rigid segments plus a learned residual, with an oracle "
        "(`benchmarks/residual_oracle.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M} (1 CPU thread) on `{args.run}`: "
        "the learned segments of that run fitted rigidly to each true frame leave "
        f"{rigid:.2f} Å (Cα, median over the particles); one displacement D growing "
        f"linearly along the path, fitted to the true residuals, would leave {oracle:.2f} Å. "
        "D fitted to the images instead, everything else given (true frame, pose, shift, CTF "
        f"of every particle), Adam 0.01, batch 100, {args.epochs} epochs; *best* the lowest "
        "ceiling over the epochs (an oracle's choice), *last* after the last epoch; cos: "
        "D against the least-squares D* of the true residuals (Cα).",
        "",
        "| box (px) | D per | smoothness λ (Å⁻²) | ceiling, best epoch | cos | ceiling, last "
        "| cos |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for box, per, smoothness, result, best in rows:
        (low, low_cos), (last, last_cos) = result["scores"][best], result["scores"][-1]
        lines.append(
            f"| {box} | {per} | {smoothness:g} | {low:.2f} (epoch {best + 1}) | "
            f"{low_cos:.2f} | {last:.2f} | {last_cos:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        print(write_section("residual_oracle", text, document="results.md"))


if __name__ == "__main__":
    main()

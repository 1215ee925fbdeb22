"""Why the segments encoder collapses at low SNR (issue 18, item 3), by measurement.

At −20 dB the segments system (cryoSPHERE's VAE with the correlation loss) predicts one
average deformation for every particle: the spread of its predicted LID–CORE distances is
0.01–0.2× the true one. Candidate causes are varied one at a time on the hinge-path data of
``information_limit.py`` (same simulation, unit-noise images, 32-px crops, batch 32, Adam
3e-4): the latent KL weight (the correlation loss's gradient shrinks with the SNR while the
KL's does not, so a fixed β weighs the prior ever more as the noise grows), the mixture's
learning rate, and the number of epochs. Each run is scored as in ``information_limit.py``
(median Cα-RMSD, r and spread of the LID–CORE distance), with and without the polish.

Results go to the ``segments_collapse`` section of docs/results.md.

Usage::

    python benchmarks/segments_collapse.py --workdir /tmp/limit     # reuses its datasets
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from cryomotion.train.results import load_run
from cryomotion.train.run import train_run
from information_limit import fmt, score, simulate
from report import write_section
from snr_sweep import configure

# name -> (settings changed as "section.key": value, epochs factor)
VARIANTS = {
    "default (β 1e-4)": ({}, 1),
    "β 1e-5": ({"deformation.latent_kl_weight": 1e-5}, 1),
    "β 1e-6": ({"deformation.latent_kl_weight": 1e-6}, 1),
    "β 0": ({"deformation.latent_kl_weight": 0.0}, 1),
    "mixture lr = training lr": ({"deformation.segmentation_lr": None}, 1),
    "2× epochs": ({}, 2),
    "q(z|x) starts at σ 0.05": ({"model.latent_log_var_init": -6.0}, 1),
    "q(z|x) starts at σ 0.05, β 0": (
        {"model.latent_log_var_init": -6.0, "deformation.latent_kl_weight": 0.0},
        1,
    ),
    "decoder starts at 0.01": ({"deformation.decoder_init": 0.01}, 1),
    "decoder starts at 0.1": ({"deformation.decoder_init": 0.1}, 1),
    "Gaussian likelihood, β 1": (
        {"deformation.likelihood": "gaussian", "deformation.latent_kl_weight": 1.0},
        1,
    ),
    "Gaussian, β 1, decoder 0.1": (
        {
            "deformation.likelihood": "gaussian",
            "deformation.latent_kl_weight": 1.0,
            "deformation.decoder_init": 0.1,
        },
        1,
    ),
    "σ 0.05, β 0, decoder 0.1": (
        {
            "model.latent_log_var_init": -6.0,
            "deformation.latent_kl_weight": 0.0,
            "deformation.decoder_init": 0.1,
        },
        1,
    ),
    "σ 0.05, β 0, 2× epochs": (
        {"model.latent_log_var_init": -6.0, "deformation.latent_kl_weight": 0.0},
        2,
    ),
    "σ 0.05, 2× epochs": ({"model.latent_log_var_init": -6.0}, 2),
    "σ 0.05, β 0, decoder 0.1, 2× epochs": (
        {
            "model.latent_log_var_init": -6.0,
            "deformation.latent_kl_weight": 0.0,
            "deformation.decoder_init": 0.1,
        },
        2,
    ),
    "decoder 0.1, σ 0.05": (
        {"deformation.decoder_init": 0.1, "model.latent_log_var_init": -6.0},
        1,
    ),
}


def train(data: dict, args, folder: Path, changes: dict, factor: int, polish: int) -> float:
    config = configure("segments", data, args, "fitted", args.epochs * factor)
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    config.model.polish_steps = polish
    config.model.polish_latent_step = args.polish_latent_step
    start = time.perf_counter()
    train_run(config, folder, resume=(folder / "config.yaml").is_file(), progress=False,
              command_line="benchmarks/segments_collapse.py")  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/information_limit"))
    parser.add_argument("--snr-db", type=float, default=-20.0)
    parser.add_argument("--particles", type=int, default=1500)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--pixel-size", type=float, default=1.5)
    parser.add_argument("--training-box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nma-dim", type=int, default=16)
    parser.add_argument("--polish-steps", type=int, default=30)
    parser.add_argument("--polish-latent-step", type=float, default=0.05)
    parser.add_argument("--emd-particles", type=int, default=500)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = args.workdir / f"snr{args.snr_db:g}dB"
    data = simulate(args.snr_db, args, folder)
    rows = []
    for name in args.variants:
        changes, factor = VARIANTS[name]
        # the default is information_limit.py's own segments run (same settings)
        slug = "".join(c if c.isalnum() or c == "." else "_" for c in name)
        name_dir = "segments" if not changes and factor == 1 else f"segments_{slug}"
        run_dir = folder / "unit" / name_dir
        seconds = train(data, args, run_dir, changes, factor, 0)
        encoder = score("segments", run_dir, data, args)
        latent_sd = float(load_run(run_dir).latents.std(axis=0).mean())
        if args.polish_steps:
            train(data, args, run_dir, changes, factor, args.polish_steps)
            polished = score("segments", run_dir, data, args)
        else:  # not measured
            polished = {key: float("nan") for key in encoder}
        rows.append((name, encoder, polished, latent_sd, seconds))
        print(name, json.dumps([encoder, polished, latent_sd, seconds]), flush=True)
    lines = [
        "## Segments at low SNR: what collapses the encoder (`benchmarks/segments_collapse.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M} (1 CPU thread, shared machine): "
        f"{args.particles:,} particles of the hinge path at {args.snr_db:g} dB, unit noise, "
        f"as `information_limit.py`; segments N = 6, {args.training_box}-px crops, batch "
        f"{args.batch_size}, Adam {args.lr:g}, {args.epochs} epochs unless stated; one "
        "setting changed per row. *latent sd*: the spread of the posterior means over the "
        f"particles (prior N(0, 1)); polish: {args.polish_steps} steps, latent step "
        f"{args.polish_latent_step:g}.",
        "",
        "| variant | RMSD (Å) | r(LID–CORE) | sd pred / true (Å) | latent sd | RMSD polished "
        "| r polished | sd pred polished | train time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, encoder, polished, latent_sd, seconds in rows:
        lines.append(
            f"| {name} | {fmt(encoder['median_rmsd'])} | {fmt(encoder['r_lid'])} | "
            f"{fmt(encoder['sd_pred'])} / {fmt(encoder['sd_true'])} | {fmt(latent_sd, 3)} | "
            f"{fmt(polished['median_rmsd'])} | {fmt(polished['r_lid'])} | "
            f"{fmt(polished['sd_pred'])} | {seconds / 60:.1f} min |"
        )
    base = rows[0][1]
    best = min(rows, key=lambda row: row[1]["median_rmsd"])
    lines += [
        "",
        f"Rigid reference {fmt(base['median_baseline'])} Å. Lowest RMSD: {best[0]} "
        f"({fmt(best[1]['median_rmsd'])} Å, spread {fmt(best[1]['sd_pred'])} / "
        f"{fmt(best[1]['sd_true'])} Å) against the default's {fmt(base['median_rmsd'])} Å "
        f"(spread {fmt(base['sd_pred'])} Å).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print("wrote", write_section("segments_collapse", text, "results.md"))


if __name__ == "__main__":
    main()

"""Why the segments encoder collapses at low SNR (issue 18, item 3), by measurement.

At −20 dB the segments system (cryoSPHERE's VAE with the correlation loss) predicts one
average deformation for every particle: the spread of its predicted LID–CORE distances is
0.01–0.2× the true one. Candidate causes are varied one at a time on the hinge-path data of
``information_limit.py`` (same simulation, unit-noise images, 32-px crops, batch 32, Adam
3e-4): the latent KL weight (the correlation loss's gradient shrinks with the SNR while the
KL's does not, so a fixed β weighs the prior ever more as the noise grows), the width
q(z|x) starts at, the decoder's scale at initialisation, the Gaussian likelihood instead of
the correlation, the mixture's learning rate, and the number of epochs. Each run is scored
as in ``information_limit.py`` (median Cα-RMSD, r and spread of the LID–CORE distance).

Results go to the ``segments_collapse`` section of docs/results.md.

Usage::

    python benchmarks/segments_collapse.py --workdir /tmp/limit     # reuses its datasets
    python benchmarks/segments_collapse.py --snr-db -10 --no-write > a.log &   # in parallel
    python benchmarks/segments_collapse.py --snr-db -20 --no-write > b.log
    python benchmarks/segments_collapse.py --from-log a.log b.log
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
from information_limit import add_dataset_arguments, fmt, score, simulate
from report import write_section
from snr_sweep import configure

# cryoSPHERE's VAE as it was the default before this benchmark: the paper's β and a
# posterior that starts at the prior's width
PAPER = {"deformation.latent_kl_weight": 1e-4, "model.latent_log_var_init": 0.0}
NEW = {}  # today's defaults: β 0, q(z|x) starting at σ 0.05

# name -> (settings changed from today's defaults, as "section.key": value; epochs factor)
VARIANTS = {
    "paper's VAE (β 1e-4, σ start 1)": (PAPER, 1),
    "β 1e-6": (PAPER | {"deformation.latent_kl_weight": 1e-6}, 1),
    "β 0": (PAPER | {"deformation.latent_kl_weight": 0.0}, 1),
    "mixture lr = training lr": (PAPER | {"deformation.segmentation_lr": None}, 1),
    "σ start 0.05": (PAPER | {"model.latent_log_var_init": -6.0}, 1),
    "decoder starts at 0.1": (PAPER | {"deformation.decoder_init": 0.1}, 1),
    "Gaussian likelihood, β 1": (
        PAPER | {"deformation.likelihood": "gaussian", "deformation.latent_kl_weight": 1.0},
        1,
    ),
    "2× epochs": (PAPER, 2),
    "β 0, 2× epochs": (PAPER | {"deformation.latent_kl_weight": 0.0}, 2),
    "σ start 0.05, 2× epochs": (PAPER | {"model.latent_log_var_init": -6.0}, 2),
    "β 0, σ start 0.05 (default)": (NEW, 1),
    "β 0, σ start 0.05 (default), 2× epochs": (NEW, 2),
    "default, decoder starts at 0.1, 2× epochs": ({"deformation.decoder_init": 0.1}, 2),
}


def train(data: dict, args, folder: Path, changes: dict, factor: int) -> float:
    config = configure("segments", data, args, "fitted", args.epochs * factor)
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    start = time.perf_counter()
    train_run(config, folder, resume=(folder / "config.yaml").is_file(), progress=False,
              command_line="benchmarks/segments_collapse.py")  # fmt: skip
    return time.perf_counter() - start


def measure(args) -> list[dict]:
    rows = []
    for snr in args.snr_db:
        folder = args.workdir / f"snr{snr:g}dB"
        data = simulate(snr, args, folder)
        for name in args.variants:
            changes, factor = VARIANTS[name]
            # today's default is information_limit.py's own segments run (same settings)
            slug = "".join(c if c.isalnum() or c == "." else "_" for c in name)
            name_dir = "segments" if not changes and factor == 1 else f"segments_{slug}"
            run_dir = folder / "unit" / name_dir
            seconds = train(data, args, run_dir, changes, factor)
            row = {
                "snr": snr,
                "name": name,
                "encoder": score("segments", run_dir, data, args),
                "latent_sd": float(load_run(run_dir).latents.std(axis=0).mean()),
                "seconds": seconds,
            }
            rows.append(row)
            print("ROW", json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [
        "## Segments at low SNR: what collapses the encoder (`benchmarks/segments_collapse.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M} (1 CPU thread per run): "
        f"{args.particles:,} particles of the hinge path, unit noise, as "
        f"`information_limit.py`; segments N = 6, {args.training_box}-px crops, batch "
        f"{args.batch_size}, Adam {args.lr:g}, {args.epochs} epochs unless stated; no polish. "
        "*paper's VAE*: β 1e-4 on the latent KL and q(z|x) starting at the prior's width "
        "(σ 1), the defaults before this benchmark; each other row changes what it names "
        "from that or from today's default (β 0, σ start 0.05). *latent sd*: the spread of "
        "the posterior means over the particles.",
        "",
        "| SNR (dB) | variant | RMSD (Å) | r(LID–CORE) | sd pred / true (Å) | latent sd "
        "| train time |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        encoder = row["encoder"]
        lines.append(
            f"| {row['snr']:g} | {row['name']} | {fmt(encoder['median_rmsd'])} | "
            f"{fmt(encoder['r_lid'])} | {fmt(encoder['sd_pred'])} / "
            f"{fmt(encoder['sd_true'])} | {fmt(row['latent_sd'], 3)} | "
            f"{row['seconds'] / 60:.1f} min |"
        )
    lines.append("")
    for snr in dict.fromkeys(row["snr"] for row in rows):
        mine = [row for row in rows if row["snr"] == snr]
        best = min(mine, key=lambda row: row["encoder"]["median_rmsd"])
        paper = next((r for r in mine if r["name"] == next(iter(VARIANTS))), None)
        text = (
            f"- {snr:g} dB: rigid reference {fmt(best['encoder']['median_baseline'])} Å; "
            f"lowest RMSD {best['name']} ({fmt(best['encoder']['median_rmsd'])} Å, spread "
            f"{fmt(best['encoder']['sd_pred'])} / {fmt(best['encoder']['sd_true'])} Å)"
        )
        if paper is not None:
            text += (
                f", against the paper's VAE {fmt(paper['encoder']['median_rmsd'])} Å (spread "
                f"{fmt(paper['encoder']['sd_pred'])} Å)"
            )
        lines.append(text + ".")
    lines += [
        "",
        "What the rows say. The collapse is the latent KL's doing, with the width q(z|x) "
        "starts at and the number of epochs: against the correlation loss, whose gradient "
        "shrinks with the SNR while the KL's does not, the paper's β = 1e-4 keeps the "
        "posterior at the prior at −20 dB whatever else changes (σ start, decoder scale, "
        "mixture rate, twice the epochs: spread ≤ 0.03 Å). Without the KL (β 0, or 1e-6) "
        "the encoder starts to separate the particles in 6 epochs and does in 12; starting "
        "q(z|x) narrow (σ 0.05, so that a fresh decoder is not fed the prior's noise) "
        "gains more with it. With the KL kept, a narrow start alone does nothing (the KL "
        "widens it again). The decoder's scale at initialisation (0 vs 0.1, which breaks "
        "the saddle of a zero decoder and a zero encoder head) changes little. The "
        "Gaussian likelihood with β = 1 (the ELBO proper) collapses at −20 dB and half "
        "at −10 dB (spread 1.02 of 3.56 Å): the classic posterior collapse, the encoder "
        "not yet good enough to pay for its KL. "
        "Today's default is β 0 with σ starting at 0.05; at −10 dB it is as good as the "
        "paper's VAE in 6 epochs and better in 12.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_arguments(parser, epochs=6)
    parser.add_argument("--snr-db", type=float, nargs="+", default=[-10.0, -20.0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    parser.add_argument(
        "--from-log", type=Path, nargs="+",
        help="build the table from the ROW lines of earlier calls (e.g. one per SNR)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.from_log:
        rows = [
            json.loads(line[4:])
            for log in args.from_log
            for line in log.read_text().splitlines()
            if line.startswith("ROW ")
        ]
    else:
        rows = measure(args)
    text = markdown(rows, args)
    print(text)
    if not args.no_write:
        print("wrote", write_section("segments_collapse", text, "results.md"))


if __name__ == "__main__":
    main()

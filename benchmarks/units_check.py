"""Does a result hold in other units? One case re-trained on the same images in four scales.

The hinge-path dataset of ``information_limit.py`` at −20 dB (1,500 particles) is given to
``segments`` (today's defaults, 12 epochs, as there) in the simulator's renderer units,
renormalised to unit background noise variance, and that times 0.1 and times 10. The
intensity scale (``model.intensity_scale: fitted``) should make the images' units not
matter; the median Cα-RMSD, r and spread of the LID–CORE distance and the motion scale are
reported per scale. Results go to the ``units_check`` section of docs/results.md.

Usage::

    python benchmarks/units_check.py --workdir /tmp/limit     # reuses its datasets
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from cryomotion.train.config import with_settings
from cryomotion.train.results import load_run
from cryomotion.train.run import train_run
from information_limit import add_dataset_arguments, fmt, score, set_polish, simulate
from report import write_section
from snr_sweep import configure, renormalise

SCALES = {"renderer units": None, "unit noise": "unit", "unit noise × 0.1": "unit_x0.1",
          "unit noise × 10": "unit_x10"}  # fmt: skip


def one(name: str, args) -> dict:
    torch.set_num_threads(1)
    folder = args.workdir / f"snr{args.snr_db:g}dB"
    data = simulate(args.snr_db, args, folder)
    variant = SCALES[name]
    paths = dict(data)
    if variant is None:
        raw = data["raw"]
        paths["star"] = raw / "particles.star"
    elif variant != "unit":
        paths = {**data, **renormalise({**data, "star": data["raw"] / "particles.star"},
                                      variant, folder / variant)}  # fmt: skip
    config = with_settings(configure(args.system, paths, args, "fitted", args.epochs), args.set)
    run_dir = folder / f"units_{args.system}_{variant or 'renderer'}"
    train_run(config, run_dir, resume=(run_dir / "config.yaml").is_file(), progress=False,
              command_line="benchmarks/units_check.py")  # fmt: skip
    result = score(args.system, run_dir, paths, args)
    result["motion_scale"] = load_run(run_dir).motion_scale
    if args.polish:
        set_polish(config, args.polish)
        train_run(config, run_dir, resume=True, progress=False,
                  command_line=f"benchmarks/units_check.py --polish {args.polish}")  # fmt: skip
        result["polished"] = score(args.system, run_dir, paths, args)
    print(name, json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_arguments(parser, epochs=12)
    parser.add_argument("--system", default="segments")
    parser.add_argument("--snr-db", type=float, default=-20.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--polish", default="",
        help="also score each run re-predicted with this polish, "
        "STEPS:PRIOR[:K[:ESTIMATE[:DECODER]]] as information_limit's (e.g. 0:none:64:mean)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="a setting for every run, as `cryomotion train --set` (inference-time settings "
        "such as model.polish_box re-predict finished runs)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args()
    simulate(args.snr_db, args, args.workdir / f"snr{args.snr_db:g}dB")  # once, first
    with ProcessPoolExecutor(args.processes) as pool:
        results = dict(zip(SCALES, pool.map(one, SCALES, [args] * len(SCALES)), strict=True))
    lines = [
        "## Units check: one result in four scales (`benchmarks/units_check.py`)",
        "",
        f"Run {datetime.datetime.now():%Y-%m-%d %H:%M} (1 thread per run, "
        f"{args.processes} at a time): {args.system} (today's defaults), the "
        f"{args.particles:,}-particle hinge-path set of `information_limit` at "
        f"{args.snr_db:g} dB, {args.epochs} epochs, {args.training_box}-px crops, intensity "
        "scale fitted; the same images in each scale. Median Cα-RMSD to the truth (Å), r and "
        "spread of the predicted LID–CORE distance, and the motion scale α the run kept.",
        "",
        "| images in | RMSD | r(LID–CORE) | sd pred / true | α | rigid |"
        + (f" RMSD, polish {args.polish} | sd pred, polished |" if args.polish else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.polish else ""),
    ]
    for name, r in results.items():
        polished = r.get("polished")
        lines.append(
            f"| {name} | {fmt(r['median_rmsd'])} | {fmt(r['r_lid'])} | {fmt(r['sd_pred'])} / "
            f"{fmt(r['sd_true'])} | {r['motion_scale']:.2f} | {fmt(r['median_baseline'])} |"
            + (f" {fmt(polished['median_rmsd'])} | {fmt(polished['sd_pred'])} |"
               if polished else "")  # fmt: skip
        )
    for key, label in (("", "encoder"), ("polished", f"polish {args.polish}")):
        rows = [r[key] if key else r for r in results.values() if not key or key in r]
        if rows:
            values = [r["median_rmsd"] for r in rows]
            lines += ["", f"Spread over the four scales ({label}): {min(values):.2f}–"
                      f"{max(values):.2f} Å (range {np.ptp(values):.2f} Å)."]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print("wrote", write_section("units_check", text, "results.md"))


if __name__ == "__main__":
    main()

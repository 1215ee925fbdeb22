"""cryomotion against cryoSPHERE 0.6.1: the same work, on the same machine, back to back.

cryoSPHERE (seed 001; ``pip install cryosphere``) renders one Gaussian per residue (its Cα,
σ = ``sigma_gmm``, amplitude the residue's electrons) and trains a VAE whose decoder moves
learned segments. It is never a dependency of cryomotion: it lives in its own virtual
environment, whose python this script runs on a peer script it writes to a temporary file.
cryoSPHERE imports ``wandb`` and ``torchvision`` without needing them on this path; the
script puts two small stand-in modules in front of the peer (a ``wandb`` that refuses to be
used, since the runs set ``wandb: False``, and ``torchvision.transforms.functional.resize``
as antialiased bilinear interpolation, used only when images are downsampled, which they are
not here). Its training loop needs a process group (it wraps its models in
DistributedDataParallel with a GPU id): a one-process gloo group and DDP without device ids
are its CPU path.

Measured, alternating the peer and cryomotion in each of ``--rounds`` rounds, both with the
same number of threads (``torch.set_num_threads``):

(a) the renderer, forward + backward (gradient w.r.t. the coordinates), batch 64, at 64 px
    (1.5 Å/px) and 128 px (1.0 Å/px): rotate, project, CTF, correlation loss (cryoSPHERE's
    ``rotate_structure``, ``project``, ``apply_ctf``, ``calc_cor_loss``; cryomotion's
    ``AtomRenderer`` in coarse mode, one bead of 2 Å per residue, and with every atom's
    5-Gaussian form factor, then ``image_correlation``), AdK (214 residues, 1,656 atoms);
(b) a training epoch at batch 128 on the same simulated 64-px AdK dataset (``--particles``,
    written by cryomotion's simulator, read by both from its RELION star file and stack):
    cryoSPHERE's own ``start_training`` loop driven for one epoch per call from its
    ``parse_yaml`` (its parameters.yaml defaults, 6 segments as ours), against
    ``cryomotion train segments`` (``train_run``) in its configuration (``--coarse
    --encoder mlp``: beads, and an MLP encoder of its layer sizes), with ``--coarse`` and
    our CNN encoder, and with every atom.
    Its rate: the particles of the epoch (drop_last) over the loop's wall time, data loading
    included; ours: the trainer's particles/s (the optimisation loop, data loading included,
    without the held-out inference).

Results go to the ``cryosphere_compare`` section of docs/performance.md.

Usage::

    python benchmarks/cryosphere_compare.py --peer-python /work/peers/cryosphere-venv/bin/python
"""

from __future__ import annotations

import os

# Passive OpenMP waiting: on a shared machine spinning threads lose whole time slices.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.readers import read_particles
from cryomotion.imaging.likelihood import image_correlation
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.dataset import SimulationConfig, simulate_dataset
from cryomotion.structure.io import read_model
from cryomotion.train.config import RunConfig, with_system_defaults
from cryomotion.train.run import train_run
from report import write_section

DEFAULT_PEER = "/work/peers/cryosphere-venv/bin/python"
BOXES = ((64, 1.5), (128, 1.0))  # (px, Å/px) of the renderer cases
RENDER_BATCH = 64
TRAIN_BATCH = 128
SIGMA = 2.0  # Å, one Gaussian per residue (cryoSPHERE's sigma_gmm, our BEAD_SIGMA)
DATA_BOX, DATA_PIXEL = 64, 1.5
TRAIN_CASES = (  # ours: (coarse, encoder trunk, key)
    (True, "mlp", "coarse_mlp"),  # cryoSPHERE's configuration: beads and an MLP encoder
    (True, "conv", "coarse"),
    (False, "conv", "atoms"),
)

STANDINS = {
    "wandb/__init__.py": '''
        """Stand-in for wandb (not installed): the benchmark's runs set ``wandb: False``."""


        def _refuse(*args, **kwargs):
            raise RuntimeError("wandb stand-in: the benchmark runs cryoSPHERE with wandb: False")


        login = init = log = Image = _refuse
    ''',
    "torchvision/__init__.py": '"""Stand-in for torchvision (not installed)."""\n',
    "torchvision/transforms/__init__.py": "",
    "torchvision/transforms/functional.py": '''
        """The one function cryoSPHERE's dataset imports: antialiased resize of (C, H, W)."""
        import torch.nn.functional as F


        def resize(image, size, antialias=True):
            return F.interpolate(
                image[None], size=list(size), mode="bilinear", antialias=antialias
            )[0]
    ''',
}

PEER_SCRIPT = r"""
import json, os, sys, time, statistics
import torch

job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
torch.manual_seed(0)
out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

if job["task"] == "render":
    import roma
    from cryosphere.model import renderer
    from cryosphere.model.ctf import CTF
    from cryosphere.model.gmm import EMAN2Grid
    from cryosphere.model.loss import calc_cor_loss
    from cryosphere.model.polymer import Polymer

    base = Polymer.from_pdb(job["pdb"])
    mus = torch.tensor(base.coord, dtype=torch.float32)
    n = mus.shape[0]
    sigmas = torch.full((n, 1), job["sigma"])
    amplitudes = torch.tensor(base.num_electron, dtype=torch.float32)[:, None]
    batch = job["batch"]
    out["residues"] = n
    out["cases"] = []
    for box, apix in job["boxes"]:
        grid = EMAN2Grid(box, apix)
        ctf = CTF.create_ctf({"file": job["star"]}, apix=apix, side_shape=box)
        indexes = torch.arange(batch)
        rotations = roma.random_rotmat(batch)
        targets = torch.randn(batch, box, box)

        def step():
            structures = mus[None].repeat(batch, 1, 1).requires_grad_()
            posed = renderer.rotate_structure(structures, rotations)
            images = renderer.project(posed, sigmas, amplitudes, grid)
            predicted = renderer.apply_ctf(images, ctf, indexes)
            loss = calc_cor_loss(predicted, targets)
            loss.backward()
            return structures.grad

        for _ in range(job["warmup"]):
            step()
        times = []
        for _ in range(job["steps"][str(box)]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out["cases"].append({"box": box, "seconds": times})
else:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(job["port"]))
    dist.init_process_group("gloo", rank=0, world_size=1)
    from cryosphere import cryosphere_train
    from cryosphere.model import utils

    # its CPU path: DDP without GPU device ids over the one-process gloo group
    cryosphere_train.DDP = lambda module, device_ids=None: DistributedDataParallel(module)
    setup = list(utils.parse_yaml(job["parameters"], 0))
    del setup[10]  # the device: start_training takes the rest, then the device id
    dataset, batch = setup[6], setup[8]
    setup[7] = 1  # one epoch a call (the yaml's N_epochs sets its loss weights' schedules)
    out["particles"] = len(dataset)
    out["per_epoch"] = (len(dataset) // batch) * batch
    out["epochs"] = []
    for _ in range(job["epochs"]):
        start = time.perf_counter()
        cryosphere_train.start_training(*setup, "cpu")
        out["epochs"].append(time.perf_counter() - start)
    dist.destroy_process_group()

with open(job["output"], "w") as handle:
    json.dump(out, handle)
"""


def peer_parameters(folder: Path, star: Path, epochs: int) -> Path:
    """cryoSPHERE's parameters.yaml (its repository's defaults, ``epochs`` of them; 6
    segments as ours, batch 128, CPU, no wandb) and images.yaml for the dataset in
    ``folder``."""
    (folder / "images.yaml").write_text(
        f"apix: {DATA_PIXEL}\nNpix: {DATA_BOX}\nNpix_downsize: {DATA_BOX}\nsigma_gmm: {SIGMA}\n"
    )
    parameters = folder / "parameters.yaml"
    parameters.write_text(
        textwrap.dedent(f"""\
        name: benchmark
        wandb: False
        wandb_project: none
        folder_path: "{folder}"
        base_structure_path: base_structure.pdb
        image_yaml: images.yaml
        particles_path: "{star.parent}"
        cs_star_file:
          file: "{star}"
        segmentation_config:
          part1:
            all_protein: True
            N_segm: 6
        lp_bandwidth:
        loss_mask_radius: 1
        input_mask_radius: 1
        latent_dimension: 8
        tau_segmentation: 0.05
        device: CPU
        num_workers: 0
        amortized: True
        N_images:
        N_epochs: {epochs}
        batch_size: {TRAIN_BATCH}
        epsilon_kl: 1e-10
        seed: 123
        deterministic_cuda: False
        encoder:
          hidden_dimensions: [512, 256, 64, 64]
        decoder:
          hidden_dimensions: [512, 512]
        optimizer:
          name: adam
          learning_rate: 0.00003
          learning_rate_segmentation: 0.0003
        loss:
          clashing_loss:
            full_clashing_loss: True
            clashing_cutoff: 4
            min_clashing_cutoff_pairs: 4
            max_clashing_cutoff_pairs: 10
            schedule: constant
            beta: 0.1
          continuity_loss:
            schedule: constant
            beta: 0.1
          KL_prior_latent:
            schedule: linear
          KL_prior_segmentation_mean:
            schedule: linear
          KL_prior_segmentation_std:
            schedule: linear
          KL_prior_segmentation_proportions:
            schedule: cyclical
            M: 5
            R: 0.5
          l2_pen:
            schedule: constant
            beta: 0.000001
        resume_training:
          model: null
          segmentation: null
        """)
    )
    return parameters


def centered_pdb(reference: Path, out: Path, center: float) -> None:
    """``reference`` moved by -``center`` Å on each axis: cryoSPHERE wants the model centred
    on the box (its ``cryosphere_center_origin``), ours is in the map's frame."""
    lines = []
    for line in reference.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            xyz = [float(line[30 + 8 * i : 38 + 8 * i]) - center for i in range(3)]
            line = line[:30] + "".join(f"{v:8.3f}" for v in xyz) + line[54:]
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")


def run_peer(python: str, job: dict, tmp: Path, threads: int) -> dict:
    """Run the peer script on ``job`` in cryoSPHERE's environment; returns its results."""
    script = tmp / "peer.py"
    script.write_text(PEER_SCRIPT)
    output = tmp / f"peer_{job['task']}.json"
    job = job | {"output": str(output), "threads": threads}
    env = os.environ | {
        "PYTHONPATH": str(tmp / "standins"),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    done = subprocess.run(
        [python, str(script), json.dumps(job)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"cryoSPHERE peer failed:\n{done.stderr[-3000:]}")
    return json.loads(output.read_text())


def our_render(reference, star: Path, coarse: bool, warmup: int, steps: dict) -> list[dict]:
    """Our renderer, forward + backward with CTF and correlation loss, per box."""
    torch.manual_seed(0)
    table = read_particles(str(star))
    dataset = ParticleDataset(table)
    ctf = torch.stack([dataset[i]["ctf"] for i in range(RENDER_BATCH)]).float()
    shifts = torch.zeros(RENDER_BATCH, 2)
    cases = []
    for box, pixel_size in BOXES:
        center = torch.full((3,), DATA_BOX / 2 * DATA_PIXEL, dtype=torch.float64)
        renderer = AtomRenderer.from_model(
            reference, box, pixel_size, rotation_center=center, coarse=coarse, bead_sigma=SIGMA
        )
        coords = torch.as_tensor(reference.coords, dtype=torch.float32)
        rotations = torch.linalg.qr(torch.randn(RENDER_BATCH, 3, 3))[0]
        rotations = rotations * torch.linalg.det(rotations)[:, None, None]
        targets = torch.randn(RENDER_BATCH, box, box)

        def step(renderer=renderer, coords=coords, rotations=rotations, targets=targets):
            structures = coords[None].repeat(RENDER_BATCH, 1, 1).requires_grad_()
            images = renderer(structures, rotations, shifts, ctf)
            image_correlation(images, targets).mean().backward()
            return structures.grad

        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps[str(box)]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        cases.append({"box": box, "seconds": times, "scatterers": renderer.n_scatterers})
    return cases


def our_train(
    star: Path, reference: Path, root: Path, coarse: bool, encoder: str, epochs: int
) -> dict:
    """``cryomotion train segments`` (``--coarse`` or every atom, ``--encoder``) for
    ``epochs`` epochs."""
    config = with_system_defaults(RunConfig(system="segments", reference=str(reference)))
    config.data.particles = str(star)
    config.model.coarse = coarse
    config.model.encoder = encoder
    config.training.batch_size = TRAIN_BATCH
    config.training.epochs = epochs
    config.training.device = "cpu"
    run = root / f"run_{'coarse' if coarse else 'atoms'}_{time.monotonic_ns()}"
    train_run(config, run, progress=False)
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {"rates": [float(row["particles_per_s"]) for row in rows]}


def peer_rates(result: dict) -> list[float]:
    """cryoSPHERE's particles/s per epoch: the epoch's particles over its wall time."""
    return [result["per_epoch"] / seconds for seconds in result["epochs"]]


def rate(seconds: list[float], items: int) -> float:
    return items / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=os.environ.get("CRYOSPHERE_PYTHON", DEFAULT_PEER))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2, help="peer/ours alternations")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per round")
    parser.add_argument("--render-steps", type=int, default=8, help="timed steps at 64 px")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = {"64": args.render_steps, "128": max(2, args.render_steps // 2)}
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, text in STANDINS.items():
            path = tmp / "standins" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())
        reference_model, frames = adk_morph(50)
        simulation = SimulationConfig(
            n_particles=args.particles, box=DATA_BOX, pixel_size=DATA_PIXEL, snr=0.1, seed=0,
            distribution="uniform",
        )  # fmt: skip
        data = simulate_dataset(reference_model, frames, simulation, tmp / "data", progress=False)
        reference = read_model(str(data["reference"]))
        peer_folder = tmp / "peer"
        peer_folder.mkdir()
        centered_pdb(data["reference"], peer_folder / "base_structure.pdb", DATA_BOX / 2 * 1.5)
        parameters = peer_parameters(peer_folder, data["star"], 300)
        render_job = {
            "task": "render", "pdb": str(peer_folder / "base_structure.pdb"),
            "star": str(data["star"]), "sigma": SIGMA, "batch": RENDER_BATCH,
            "boxes": BOXES, "warmup": 2, "steps": steps,
        }  # fmt: skip
        train_job = {
            "task": "train", "parameters": str(parameters), "epochs": args.epochs,
            "port": 29500 + os.getpid() % 1000,
        }  # fmt: skip

        render = {"peer": [], "coarse": [], "atoms": []}
        train = {"peer": [], "coarse_mlp": [], "coarse": [], "atoms": []}
        for round_index in range(args.rounds):
            # the peer first in odd rounds, ours first in even ones: a load that drifts
            # during a round favours neither side over the rounds
            order = (0, 1) if round_index % 2 == 0 else (1, 0)
            parts = (
                lambda: render["peer"].append(
                    run_peer(args.peer_python, render_job, tmp, args.threads)["cases"]
                ),
                lambda: [
                    render[key].append(our_render(reference, data["star"], coarse, 2, steps))
                    for coarse, key in ((True, "coarse"), (False, "atoms"))
                ],
            )
            for part in order:
                parts[part]()
            print(f"round {round_index + 1}: render done", flush=True)
            if args.skip_train:
                continue
            parts = (
                lambda: train["peer"].append(
                    peer_rates(run_peer(args.peer_python, train_job, tmp, args.threads))
                ),
                lambda: [
                    train[key].append(
                        our_train(data["star"], data["reference"], tmp, coarse, encoder,
                                  args.epochs)["rates"]
                    )
                    for coarse, encoder, key in TRAIN_CASES
                ],
            )  # fmt: skip
            for part in order:
                parts[part]()
            print(f"round {round_index + 1}: training done", flush=True)
    load_after = os.getloadavg()
    markdown = report(args, render, train, peer_residues=reference.n_residues,
                      load=(load_before, load_after))  # fmt: skip
    print(markdown)
    if not args.no_write:
        write_section("cryosphere_compare", markdown)


def report(args, render: dict, train: dict, peer_residues: int, load) -> str:
    """The docs section: per round and box, images/s and our ratios to cryoSPHERE."""
    lines = [
        "## Against cryoSPHERE 0.6.1 (`benchmarks/cryosphere_compare.py`)",
        "",
        f"Same machine, alternated ({args.rounds} rounds; cryoSPHERE first in odd rounds, "
        "ours first in even ones), "
        f"{args.threads} threads each (`torch.set_num_threads`), torch {torch.__version__}; "
        f"load average {load[0][0]:.2f} before, {load[1][0]:.2f} after. AdK: "
        f"{peer_residues} residues, 1,656 atoms. cryoSPHERE from PyPI in its own "
        "environment (stand-ins for `wandb` and `torchvision`, a one-process gloo group).",
        "",
        f"**Renderer**, forward + backward w.r.t. coordinates, batch {RENDER_BATCH}: rotate, "
        "project, CTF, correlation loss. images/s (median step per round; rounds "
        "separated by /). Coarse: one Gaussian of σ 2 Å per residue, as cryoSPHERE.",
        "",
        "| box | cryoSPHERE | ours coarse | ratio | ours all-atom | all-atom / cryoSPHERE |",
        "|---|---|---|---|---|---|",
    ]
    for index, (box, _) in enumerate(BOXES):
        peer = [rate(r[index]["seconds"], RENDER_BATCH) for r in render["peer"]]
        coarse = [rate(r[index]["seconds"], RENDER_BATCH) for r in render["coarse"]]
        atoms = [rate(r[index]["seconds"], RENDER_BATCH) for r in render["atoms"]]
        ratios = [c / p for c, p in zip(coarse, peer, strict=True)]
        atom_ratios = [a / p for a, p in zip(atoms, peer, strict=True)]
        lines.append(
            f"| {box} px | {_join(peer)} | {_join(coarse)} | {_join(ratios, '.2f', '×')} | "
            f"{_join(atoms)} | {_join(atom_ratios, '.2f', '×')} |"
        )
    if train["peer"]:
        lines += [
            "",
            f"**Training**, {args.particles} simulated particles, 64 px (1.5 Å/px), batch "
            f"{TRAIN_BATCH}, particles/s per epoch ({args.epochs} epochs a round, rounds "
            "separated by ;). cryoSPHERE: its own `start_training` loop (its default "
            "parameters.yaml: MLP encoder 512-256-64-64, latent 8, full clash loss; 6 "
            "segments), the epoch's particles over its wall time. Ours: `cryomotion train "
            "segments` (latent 36, 6 segments), the trainer's particles/s, in cryoSPHERE's "
            "configuration (`--coarse --encoder mlp`: beads of 2 Å, an MLP encoder "
            "512-256-64-64), with our CNN encoder (width 0.25) and with every atom.",
            "",
            "| | particles/s | ratio to cryoSPHERE |",
            "|---|---|---|",
        ]
        peer = [statistics.median(r) for r in train["peer"]]
        lines.append(f"| cryoSPHERE 0.6.1 | {_rounds(train['peer'])} | 1 |")
        labels = {
            "coarse_mlp": "ours `--coarse --encoder mlp` (its configuration)",
            "coarse": "ours `--coarse` (CNN encoder)",
            "atoms": "ours, every atom (CNN encoder)",
        }
        for key, label in labels.items():
            ratios = [statistics.median(r) / p for r, p in zip(train[key], peer, strict=True)]
            lines.append(f"| {label} | {_rounds(train[key])} | {_join(ratios, '.2f', '×')} |")
    return "\n".join(lines)


def _rounds(rates: list[list[float]]) -> str:
    return "; ".join(_join(r) for r in rates)


def _join(values, spec: str = ",.0f", suffix: str = "") -> str:
    return " / ".join(f"{v:{spec}}{suffix}" for v in values if math.isfinite(v))


if __name__ == "__main__":
    sys.exit(main())

"""Two torchrun processes (gloo, CPU) train the same model as one process, per-particle
pose table included (each process refines its own particles' rows; they are all-gathered).

With group normalisation every image is normalised on its own, so the gradient of a
global batch split across processes, averaged by DistributedDataParallel, is the
one-process gradient up to rounding (batch normalisation would use per-process batch
statistics on the CPU, where SyncBatchNorm is unavailable).
"""

import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cryomotion.cli.main import main
from cryomotion.data import read_particles
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.distributed import DistributedContext

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_processes_train_like_one(tmp_path):
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    assert two["world_size"] == 2
    assert out.with_suffix(".ckpt").is_file()  # written by rank 0

    one = runpy.run_path(str(WORKER), run_name="ddp_worker")["train_parameters"](
        DistributedContext()
    )
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    order_one, order_two = one["index"].argsort(), two["index"].argsort()
    assert torch.equal(one["index"][order_one], two["index"][order_two])
    torch.testing.assert_close(
        two["latents"][order_two], one["latents"][order_one], rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        two["rotations"][order_two], one["rotations"][order_one], rtol=1e-4, atol=1e-4
    )
    table = two["state"]["pose_table.values"]
    assert table[8:].abs().sum() > 0  # trained particles' rows were refined on both ranks
    assert torch.equal(table[:8], torch.zeros_like(table[:8]))  # test particles: untouched


# -- every system under torchrun: two processes, one run folder each ---------------------

N_PARTICLES = 33
# per system: its flags on tiny settings (each run a few seconds)
SYSTEM_FLAGS = {
    "nma": ["--modes", "2", "--pose-mode", "refine"],
    "segments": ["--segments", "2", "--pose-mode", "refine"],
    "atomvae": [  # the seed's poses inferred: a dream, a pose-only and a joint phase
        "--pose-mode", "infer", "--set", "deformation.dream_epochs=1", "--epochs", "3",
        "--coarse", "--conformation-samples", "2", "--pose-samples", "2",
        "--set", "deformation.trunk=32,16", "--set", "deformation.width=16",
        "--set", "deformation.blocks=1", "--set", "deformation.representation=16",
        "--set", "deformation.stage1_pose_samples=2",
    ],
    "flex": [
        "--set", "deformation.point_spacing=4", "--set", "deformation.mesh_spacing=10",
        "--set", "deformation.inner_steps=2", "--set", "deformation.predict_steps=3",
        "--set", "deformation.fixed_latent_epochs=0", "--set", "deformation.block_epochs=1",
        "--set", "deformation.hidden=16",
    ],
    "deephemnma": [
        "--modes", "2", "--align-fraction", "0.5", "--pose-mode", "refine",
        "--set", "deformation.align_steps=10", "--set", "deformation.resnet_width=0.125",
    ],
}  # fmt: skip
SYSTEMS_WORKER = Path(__file__).with_name("ddp_systems_worker.py")


@pytest.fixture(scope="module")
def simulated(simulate_with_cli, adk_closed_path):
    """33 AdK particles (4-frame morph, 32 px at 3 Å/px, SNR 1)."""
    return simulate_with_cli("ddp_systems", adk_closed_path, 4, N_PARTICLES, 32, 3.0)


def train_arguments(system: str, simulated: Path, *extra: str) -> list[str]:
    """``cryomotion train SYSTEM`` arguments after the system's name, but ``-o``. 24 of the
    33 particles train: whole global batches of 8, so no process pads its share; the 9 test
    particles (and all 33 at the end) split unevenly, 5 and 4, for inference."""
    return [
        str(simulated / "particles.star"), str(simulated / "reference.pdb"), "--epochs", "1",
        "--test-fraction", "0.27", "--batch-size", "8", "--device", "cpu", "--workers", "0",
        "--norm", "group", "--no-progress", *SYSTEM_FLAGS[system], *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two_process_runs(simulated, tmp_path_factory) -> Path:
    """Every system trained by two torchrun processes (one launch): OUT/<system>."""
    out = tmp_path_factory.mktemp("ddp_systems")
    arguments = out / "arguments.json"
    arguments.write_text(json.dumps({s: train_arguments(s, simulated) for s in SYSTEM_FLAGS}))
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(SYSTEMS_WORKER), str(out), str(arguments)],
        env=dict(os.environ, OMP_NUM_THREADS="1", CRYOMOTION_THREADS="1"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


def read_latents(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "latents.npz") as data:
        return dict(data)


def check_complete(latents: dict[str, np.ndarray]) -> None:
    """Every particle exactly once, in order, with finite values and proper rotations."""
    assert np.array_equal(latents["particle_index"], np.arange(N_PARTICLES))
    for key in ("latents", "rotations", "shifts", "log_var", "regressed_latents"):
        if key in latents:
            assert len(latents[key]) == N_PARTICLES and np.isfinite(latents[key]).all(), key
    rotations = latents["rotations"].astype(np.float64)
    identity = np.broadcast_to(np.eye(3), rotations.shape)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), identity, atol=1e-4)


def pose_changed(latents: dict[str, np.ndarray], simulated: Path) -> np.ndarray:
    """(N,) bool: the particle's written rotation differs from the particle file's."""
    given = read_particles(simulated / "particles.star")
    return np.abs(latents["rotations"] - given.rotations).max(axis=(1, 2)) > 1e-6


@pytest.mark.parametrize("system", list(SYSTEM_FLAGS))
def test_every_system_trains_under_torchrun(system, two_process_runs, simulated):
    """Two gloo processes write one complete run folder whose per-particle state holds
    both processes' particles."""
    run = two_process_runs / system
    latents = read_latents(run)
    check_complete(latents)
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["epoch"] == (3 if system == "atomvae" else 1)
    state = checkpoint["model"]
    is_test = latents["is_test"]
    if system in ("nma", "segments"):
        # --pose-mode refine: every particle's pose refined at inference (both processes'
        # shares written) and every training particle's table row refined in training, on
        # whichever process saw it
        assert pose_changed(latents, simulated).all()
        assert len(read_particles(run / "refined_particles.star")) == N_PARTICLES
        table = state["pose_table.values"].numpy()
        assert (np.abs(table[~is_test]).sum(1) > 0).all()
    if system == "atomvae":  # poses inferred by both processes, written for RELION
        assert pose_changed(latents, simulated).all()
        assert len(read_particles(run / "refined_particles.star")) == N_PARTICLES
    if system == "flex":
        table = state["inference.table.values"].numpy()
        # every particle's latent left zero: training rows by their step's process, test
        # rows by the process that inferred them for the test loss, all-gathered to rank 0
        assert (np.abs(table).sum(1) > 0).all(), np.flatnonzero(np.abs(table).sum(1) == 0)
        assert (np.abs(latents["latents"]).sum(1) > 0).all()
    if system == "deephemnma":
        aligned = latents["aligned"]
        assert aligned.sum() == round(N_PARTICLES / 2)
        with np.load(run / "alignment.npz") as alignment:  # both processes' halves
            assert np.array_equal(alignment["particle_index"], np.flatnonzero(aligned))
            np.testing.assert_allclose(latents["latents"][aligned], alignment["values"][:, :2])
        assert np.isfinite(latents["misfit"][aligned]).all()
        assert np.isnan(latents["misfit"][~aligned]).all()
        assert np.array_equal(state["inference.aligned"].numpy(), aligned)
        # the regressed particles' poses refined by the regressor on both processes
        assert pose_changed(latents, simulated)[~aligned].all()
        assert len(read_particles(run / "refined_particles.star")) == N_PARTICLES


def test_two_process_checkpoint_resumes_in_one_process(two_process_runs, simulated, tmp_path):
    """One process resumes the two processes' checkpoint and trains on."""
    resumed = tmp_path / "resumed"
    shutil.copytree(two_process_runs / "nma", resumed)
    assert main(["train", "nma", *train_arguments("nma", simulated, "--epochs", "2"),
                 "-o", str(resumed), "--resume"]) == 0  # fmt: skip
    assert load_checkpoint(resumed / "checkpoints" / "last.pt")["epoch"] == 2
    check_complete(read_latents(resumed))


@pytest.mark.slow
def test_two_process_run_matches_one(two_process_runs, simulated, tmp_path):
    """NMA with group normalisation and a pose table: the same global batches give the
    one-process run folder to rounding."""
    one = tmp_path / "one"
    assert main(["train", "nma", *train_arguments("nma", simulated), "-o", str(one)]) == 0
    two, single = read_latents(two_process_runs / "nma"), read_latents(one)
    for key in ("latents", "rotations", "shifts"):
        np.testing.assert_allclose(two[key], single[key], rtol=1e-3, atol=1e-3, err_msg=key)

"""Two torchrun processes (gloo, CPU) train the same model as one process, per-particle
pose table included (each process refines its own particles' rows; they are all-gathered).

With group normalisation every image is normalised on its own, so the gradient of a
global batch split across processes, averaged by DistributedDataParallel, is the
one-process gradient up to rounding (batch normalisation would use per-process batch
statistics on the CPU, where SyncBatchNorm is unavailable).
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import torch

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

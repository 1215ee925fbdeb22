"""The gradient and maximum reductions of ``train.distributed`` across two gloo processes."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cryomotion.train.distributed import (
    DistributedContext,
    all_reduce_gradients,
    all_reduce_max,
)


def _worker(rank: int, store: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        context = DistributedContext(rank=rank, world_size=2)
        weight = torch.nn.Parameter(torch.zeros(3))
        bias = torch.nn.Parameter(torch.zeros(1))  # rank 1 leaves its gradient missing
        weight.grad = torch.full((3,), float(rank + 1))  # 1 and 2: the average is 1.5
        if rank == 0:
            bias.grad = torch.tensor([4.0])  # with rank 1's missing one: 2
        all_reduce_gradients(context, [weight, bias])
        results[rank] = (
            weight.grad.tolist(),
            bias.grad.tolist(),
            all_reduce_max(context, 3 + rank),
        )
    finally:
        dist.destroy_process_group()


def test_gradients_are_averaged_and_the_maximum_shared(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(str(tmp_path / "store"), results), nprocs=2, join=True)
    for rank in (0, 1):
        assert results[rank] == ([1.5, 1.5, 1.5], [2.0], 4)


def test_one_process_leaves_everything_as_it_is():
    weight = torch.nn.Parameter(torch.zeros(2))
    weight.grad = torch.tensor([1.0, 2.0])
    all_reduce_gradients(DistributedContext(), [weight])
    assert weight.grad.tolist() == [1.0, 2.0]
    assert all_reduce_max(DistributedContext(), 7) == 7

"""Processes and devices: torchrun + DistributedDataParallel, or one process (world size 1).

Rank, world size and local rank come from the environment that ``torchrun`` sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); without it the run is one process and the
same code path runs with world size 1. The backend is NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from cryomotion.errors import InputError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes checkpoints and outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(setting: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA device ``local_rank`` if CUDA is present, else the CPU; or as given."""
    if setting in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise InputError(f"--device {setting!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {setting}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device_setting: str = "auto") -> DistributedContext:
    """Join the process group torchrun set up (if any) and choose this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, device)


def shutdown(context: DistributedContext) -> None:
    """Leave the process group (if this process joined one)."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.distributed:
        dist.barrier()


def all_reduce_sum(context: DistributedContext, values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64)."""
    if not context.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_reduce_device(context))
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def all_reduce_max(context: DistributedContext, value: int) -> int:
    """The largest ``value`` over all processes."""
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=_reduce_device(context))
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def all_reduce_gradients(context: DistributedContext, parameters: list[torch.Tensor]) -> None:
    """Average the gradients of ``parameters`` over all processes, in place (a missing
    gradient counts as zero), as DistributedDataParallel does for a module it wraps."""
    if not context.distributed:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad)
        parameter.grad /= context.world_size


def _reduce_device(context: DistributedContext) -> torch.device:
    return context.device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_object(context: DistributedContext, value):
    """Rank 0's ``value`` on every process."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_arrays(context: DistributedContext, arrays: dict[str, np.ndarray]) -> dict:
    """Concatenate each process's arrays (rank order) on rank 0; other ranks get {}."""
    if not context.distributed:
        return arrays
    gathered: list = [None] * context.world_size if context.is_main else None
    dist.gather_object(arrays, gathered, dst=0)
    if not context.is_main:
        return {}
    return {key: np.concatenate([part[key] for part in gathered]) for key in arrays}

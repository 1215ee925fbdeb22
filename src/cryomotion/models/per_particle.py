"""Per-particle state and the inner loop that optimises it.

Some systems keep values per particle rather than predicting them from the image: a pose
correction (``--pose-mode refine``), an auto-decoded latent (3DFlex), an elastic alignment
(DeepHEMNMA). Such a table is held as *buffers*, not parameters:

- the outer Adam never sees it, so rows of particles absent from a batch do not keep moving
  through their momentum (the reason cryoDRGN's pose tracker uses a sparse embedding);
- DistributedDataParallel does not all-reduce it; instead each process's updated rows are
  all-gathered after every step (``sync_rows``), so every replica holds the whole table;
- it is saved in checkpoints with the rest of the model's state.

Rows are updated by ``optimize_rows``: a few Adam steps per row on a per-image loss, with
each row's own moment estimates kept in the table, gradients taken with
``torch.autograd.grad`` with respect to the rows alone (no parameter gradient accumulates,
no DDP hook fires, so it runs on the unwrapped module between outer steps).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

BETAS = (0.9, 0.999)
EPS = 1e-8


class ParticleState(nn.Module):
    """A table of ``width`` values for each of ``n_particles`` particles, with per-row Adam
    moments. Buffers: ``values`` (N, k), ``first_moment`` (N, k), ``second_moment`` (N, k),
    ``steps`` (N,) Adam steps taken per row.

    ``learning_rates`` (k,): the step size of each column in its own unit (e.g. radians for
    a rotation vector, Å for a shift); Adam's steps are about that size whatever the scale
    of the loss, so the table does not depend on the images' units.
    """

    def __init__(self, n_particles: int, learning_rates: list[float] | torch.Tensor):
        super().__init__()
        rates = torch.as_tensor(learning_rates, dtype=torch.float32).reshape(-1)
        width = rates.numel()
        self.register_buffer("values", torch.zeros(n_particles, width))
        self.register_buffer("first_moment", torch.zeros(n_particles, width))
        self.register_buffer("second_moment", torch.zeros(n_particles, width))
        self.register_buffer("steps", torch.zeros(n_particles, dtype=torch.long))
        self.register_buffer("learning_rates", rates, persistent=False)

    @property
    def n_particles(self) -> int:
        return self.values.shape[0]

    @property
    def width(self) -> int:
        return self.values.shape[1]

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """(B, k) current values of the particles ``index`` (B,)."""
        return self.values.index_select(0, index)

    @torch.no_grad()
    def optimize_rows(
        self,
        index: torch.Tensor,
        loss: Callable[[torch.Tensor], torch.Tensor],
        steps: int,
        write: bool = True,
        final_rate: float = 1.0,
    ) -> torch.Tensor:
        """``steps`` Adam steps on the rows ``index`` (B,) against ``loss``: (B, k) -> (B,)
        per-image losses (each image's loss depends on its own row only). Returns the new
        rows (B, k); with ``write`` they and their moments are stored in the table.

        ``final_rate`` < 1 shrinks the step size geometrically to that fraction of the
        learning rates by the last step (to settle a final estimate; 1: constant)."""
        values = self.values.index_select(0, index).clone()
        first = self.first_moment.index_select(0, index).clone()
        second = self.second_moment.index_select(0, index).clone()
        count = self.steps.index_select(0, index).clone()
        beta1, beta2 = BETAS
        decay = final_rate ** (1.0 / max(steps - 1, 1))
        rates = self.learning_rates.clone()
        for _ in range(steps):
            with torch.enable_grad():
                rows = values.detach().requires_grad_(True)
                (gradient,) = torch.autograd.grad(loss(rows).sum(), rows)
            count += 1
            first.mul_(beta1).add_(gradient, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
            t = count.to(values.dtype)[:, None]
            first_hat = first / (1 - beta1**t)
            second_hat = second / (1 - beta2**t)
            values -= rates * first_hat / (second_hat.sqrt() + EPS)
            rates *= decay
        if write:
            self.values.index_copy_(0, index, values)
            self.first_moment.index_copy_(0, index, first)
            self.second_moment.index_copy_(0, index, second)
            self.steps.index_copy_(0, index, count)
        return values

    @torch.no_grad()
    def sync_rows(self, index: torch.Tensor) -> None:
        """All-gather the rows ``index`` (B,) updated by each process into every replica.

        Every process must call it (a collective), each with the rows it updated: the
        trainer's batches (equal sizes) or its share of the particles at inference (sizes
        may differ by process; shorter shares are padded for the exchange and the padding
        dropped). No-op without a process group.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        world = dist.get_world_size()
        device = self.values.device
        if dist.get_backend() == "nccl" and device.type != "cuda":
            raise RuntimeError("per-particle tables under NCCL must live on the GPU")
        index = index.to(device=device, dtype=torch.long).reshape(-1)
        sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([len(index)], dtype=torch.long, device=device))
        sizes = [int(size) for size in sizes]
        padding = max(sizes) - len(index)
        padded = torch.cat([index, index.new_zeros(padding)])  # row 0 as filler, dropped below
        parts = {
            "index": padded,
            "values": self.values.index_select(0, padded),
            "first_moment": self.first_moment.index_select(0, padded),
            "second_moment": self.second_moment.index_select(0, padded),
            "steps": self.steps.index_select(0, padded),
        }
        for name, tensor in parts.items():
            gathered = [torch.empty_like(tensor) for _ in range(world)]
            dist.all_gather(gathered, tensor.contiguous())
            parts[name] = torch.cat([part[:size] for part, size in zip(gathered, sizes)])
        for name in ("values", "first_moment", "second_moment", "steps"):
            getattr(self, name).index_copy_(0, parts["index"], parts[name])

    def extra_repr(self) -> str:
        return f"particles={self.n_particles}, width={self.width}"

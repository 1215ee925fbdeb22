"""The alignment stage before training (DeepHEMNMA): each particle of a subset aligned on
its own (``Inference.align``), the results shared by every process and kept in the run
folder (``alignment.npz``), so a resumed run reads them back instead of aligning again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError
from cryomotion.imaging.pose import Pose
from cryomotion.models.alignment import Alignment
from cryomotion.models.motion_model import MotionModel
from cryomotion.npz_arrays import load_arrays
from cryomotion.train.distributed import DistributedContext, broadcast_object, gather_arrays

log = logging.getLogger(__name__)

ALIGNMENT_FILE = "alignment.npz"


def align_subset(
    model: MotionModel,
    dataset: Dataset,
    indices: np.ndarray,
    path: Path,
    batch_size: int = 64,
    context: DistributedContext | None = None,
    use_file_shifts: bool = True,
    progress: bool = True,
) -> dict[str, float]:
    """Align the particles ``indices`` with ``model.inference.align`` (each process a share),
    store every result in every process's inference and, on rank 0, write ``path``:
    ``particle_index`` (n,), ``values`` (n, d + 5) amplitudes, rotation vector (radians),
    shift correction (Å), ``misfit`` (n,), ``steps`` (n,), ``rotations`` (n, 3, 3) and
    ``shifts`` (n, 2) Å (the aligned pose). If ``path`` exists (a resumed run) it is read
    instead. Returns ``{"particles", "seconds", "particles_per_s"}`` of this call."""
    context = context or DistributedContext()
    indices = np.asarray(indices, dtype=np.int64)
    if path.is_file():
        arrays = _read(path, indices)
        log.info("read the alignment of %d particles from %s", len(indices), path)
        _store(model, arrays)
        return {"particles": 0.0, "seconds": 0.0, "particles_per_s": float("nan")}
    device = context.device
    mine = indices[context.rank :: context.world_size]
    batches = [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=0)
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    bar = tqdm(
        total=len(indices),
        unit="img",
        desc="elastic alignment",
        disable=not (progress and context.is_main),
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        if not use_file_shifts:
            batch["shift"] = torch.zeros_like(batch["shift"])
        alignment = model.inference.align(model, batch)
        index = batch["index"]
        for key, value in (
            ("particle_index", index),
            ("values", alignment.values),
            ("misfit", alignment.misfit),
            ("steps", alignment.steps),
            ("rotations", model.inference.aligned_rotations.index_select(0, index)),
            ("shifts", model.inference.aligned_shifts.index_select(0, index)),
        ):
            parts.setdefault(key, []).append(value.detach().cpu().numpy())
        bar.update(len(index) * context.world_size)
    bar.close()
    seconds = time.perf_counter() - start
    model.train(was_training)
    arrays = {key: np.concatenate(value) for key, value in parts.items()}
    if context.distributed:
        arrays = broadcast_object(context, gather_arrays(context, arrays))
        _store(model, arrays)
    rate = len(indices) / max(seconds, 1e-9)
    if context.is_main:
        order = np.argsort(arrays["particle_index"], kind="stable")
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **{key: value[order] for key, value in arrays.items()})
        log.info(
            "elastic alignment of %d particles: %.1f s, %.2f particles/s; median misfit %.4g",
            len(indices),
            seconds,
            rate,
            float(np.median(arrays["misfit"])),
        )
    return {"particles": float(len(indices)), "seconds": seconds, "particles_per_s": rate}


def _store(model: MotionModel, arrays: dict[str, np.ndarray]) -> None:
    device = model.inference.aligned.device
    alignment = Alignment(
        torch.as_tensor(arrays["values"], device=device),
        torch.as_tensor(arrays["misfit"], device=device),
        torch.as_tensor(arrays["steps"], device=device),
    )
    pose = Pose(
        torch.as_tensor(arrays["rotations"], device=device),
        torch.as_tensor(arrays["shifts"], device=device),
    )
    model.inference.store(torch.as_tensor(arrays["particle_index"], device=device), alignment, pose)


def _read(path: Path, indices: np.ndarray) -> dict[str, np.ndarray]:
    arrays = load_arrays(
        path,
        {
            "particle_index": ("particles",),
            "values": ("particles", None),
            "misfit": ("particles",),
            "steps": ("particles",),
            "rotations": ("particles", 3, 3),
            "shifts": ("particles", 2),
        },
        what="an alignment file written by 'cryomotion train deephemnma'",
    )
    if not np.array_equal(np.sort(arrays["particle_index"]), np.sort(indices)):
        raise InputError(f"{path}: aligned particles differ from the run's subset")
    return arrays

"""Projections of an atomic model with the poses, shifts and CTFs of a particle table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cryomotion.data.particles import ParticleTable
from cryomotion.data.poses import resolve_rotation_center
from cryomotion.data.stack import StackWriter
from cryomotion.errors import InputError
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.structure.model import AtomicModel


def default_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def project_particles(
    model: AtomicModel,
    table: ParticleTable,
    output: str | Path,
    indices: np.ndarray | None = None,
    use_ctf: bool = True,
    rotation_center: str = "box",
    batch_size: int = 128,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Render ``model`` for the particles ``indices`` of ``table`` into the stack ``output``.

    Images have each particle's box and pixel size (particles of several optics groups with
    different pixel sizes must go to separate stacks: an ``InputError`` says so).
    """
    indices = np.arange(len(table)) if indices is None else np.asarray(indices)
    if len(indices) == 0:
        raise InputError("no particles selected (expected at least one index)")
    pixel_sizes = np.unique(table.pixel_size[indices])
    if len(pixel_sizes) > 1:
        raise InputError(
            f"{table.source}: the selected particles have pixel sizes {pixel_sizes.tolist()} Å; "
            "an MRC stack holds one (select one optics group with --indices)"
        )
    pixel_size = float(pixel_sizes[0])
    box = table.box_size
    center = resolve_rotation_center(rotation_center, model, box, pixel_size)
    device = default_device(device)
    renderer = AtomRenderer.from_model(model, box, pixel_size, rotation_center=center).to(device)
    coords = torch.tensor(model.coords, dtype=torch.float32, device=device)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=device)

    output = Path(output)
    with StackWriter(output, len(indices), box, pixel_size) as writer:
        bar = tqdm(total=len(indices), unit="img", desc="project", disable=not progress)
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            with torch.no_grad():
                images = renderer(
                    coords,
                    tensor(table.rotations[batch]),
                    tensor(table.shifts[batch]),
                    tensor(table.ctf[batch]) if use_ctf else None,
                )
            writer.write(start, images.cpu().numpy())
            bar.update(len(batch))
        bar.close()
    return output

"""Fit the intensity scale between a dataset and the renderer before training starts."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from cryomotion.models.motion_model import MotionModel

log = logging.getLogger(__name__)

# Particles used to fit the noise level and the gains (a fixed, evenly spaced subset).
CALIBRATION_PARTICLES = 1024


@torch.no_grad()
def calibrate_intensity(
    model: MotionModel,
    dataset: Dataset,
    indices: np.ndarray,
    device: torch.device | str = "cpu",
    use_file_shifts: bool = True,
    source: str = "the particles",
    batch_size: int = 128,
) -> None:
    """Set ``model.intensity`` from up to ``CALIBRATION_PARTICLES`` of ``indices``: the
    reference model (the deformation at zero latents) rendered with each particle's pose,
    shift and CTF, against its image (``IntensityScale.calibrate``)."""
    if model.intensity.mode == "none" or len(indices) == 0:
        return
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) > CALIBRATION_PARTICLES:
        pick = np.linspace(0, len(indices) - 1, CALIBRATION_PARTICLES).round().astype(np.int64)
        indices = np.sort(indices[pick])
    was_training = model.training
    model.eval()
    zero = torch.zeros(1, model.deformation.latent_dim, device=device)
    rest = model.deformation(zero)
    reference = rest.coords[0]
    amplitudes = rest.amplitudes  # per-point amplitudes (3DFlex's canonical density) or None
    amplitudes = None if amplitudes is None else amplitudes.detach().reshape(-1, len(reference))[0]
    measured, rendered, groups = [], [], []
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        shifts = batch["shift"] if use_file_shifts else torch.zeros_like(batch["shift"])
        image = model.renderer(reference, batch["rotation"], shifts, batch["ctf"], amplitudes)
        rendered.append(image.cpu())
        measured.append(batch["image"].cpu())
        group = batch.get("optics_group")
        groups.append(
            group.cpu() if group is not None else torch.zeros(len(shifts), dtype=torch.long)
        )
    model.intensity.calibrate(
        torch.cat(measured), torch.cat(rendered), torch.cat(groups), source=source
    )
    model.train(was_training)

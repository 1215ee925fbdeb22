"""How much of its learned motion a run keeps, chosen on held-out images.

Each particle's model is moved part of the way back to the reference,

    x_α = x_ref + α (x(z) − x_ref),    α in [0, 1],

one α for the whole run, the one whose models best explain the held-out particles' images
(the lowest mean image loss of the run's own objective, with every particle's predicted
latents and pose). α = 1 keeps the models as learned; α = 0 is the rigid reference. At
low SNR an encoder may learn deformations the images do not support (measured on AdK's
hinge path at −30 dB: segments 6.73 Å against the reference's 4.96 Å, docs/results.md,
compare_adk); the held-out images then prefer a smaller α, a shrinkage estimate that no
ground truth is needed for. For normal modes x_α is exactly the amplitudes times α; for
segments turning about hinges it is the chord, not the arc, for 0 < α < 1.

With a per-particle polish the held-out particles' polished latents are fitted to their
own images, so the choice is made on the encoder's latents of the held-out particles
(``train.run``) and applied to the polished models.

The choice is written to ``latents.npz`` (``motion_scale``), and ``train.results``'
``decode_latents`` applies it, so every product (models, trajectories, maps, analysis)
uses the same models.
"""

from __future__ import annotations

import numpy as np
import torch

from cryomotion.imaging.pose import Pose
from cryomotion.models.objectives import ReconstructionObjective


@torch.no_grad()
def choose_motion_scale(
    trainer, predictions: dict[str, np.ndarray], held_out: np.ndarray, scales: list[float]
) -> tuple[float, dict[float, float]]:
    """The α of ``scales`` with the lowest mean image loss over the particles ``held_out``,
    rendered with their ``predictions`` (``Trainer.predict``'s latents, rotations, shifts,
    index) on ``trainer``'s unwrapped model; and the loss of every α. Ties go to the
    larger α (the model as learned)."""
    module = trainer.module
    objective = trainer.phase.objective
    if not isinstance(objective, ReconstructionObjective):
        objective = ReconstructionObjective()  # e.g. a regression phase: the L2 loss
    row_of = {int(index): row for row, index in enumerate(predictions["index"])}
    was_training = module.training
    module.eval()
    totals = {scale: 0.0 for scale in scales}
    count = 0
    for batch in trainer.device_batches(held_out):
        rows = [row_of[int(index)] for index in batch["index"].cpu()]
        device = batch["image"].device
        latents = torch.as_tensor(predictions["latents"][rows], device=device).float()
        pose = Pose(
            torch.as_tensor(predictions["rotations"][rows], device=device).float(),
            torch.as_tensor(predictions["shifts"][rows], device=device).float(),
        )
        measured = module.intensity.normalize(batch["image"])
        for scale in scales:
            module.motion_scale = scale
            images, _ = module.decode(
                latents[:, None], pose, batch.get("ctf"), batch.get("optics_group"), measured
            )
            totals[scale] += float(objective.image_loss(images, measured).sum())
        count += len(rows)
    module.motion_scale = 1.0
    module.train(was_training)
    losses = {scale: total / max(count, 1) for scale, total in totals.items()}
    best = min(reversed(scales), key=lambda scale: losses[scale])
    return best, losses

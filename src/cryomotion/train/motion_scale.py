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

The reference is the null hypothesis: a run keeps motion (α > 0) only when its best α
lowers the held-out loss below the reference's by at least ``significance`` standard
errors of the per-particle difference (paired: the noise every α sees in one image cancels).
Otherwise the images do not show the motion and the run returns the reference, so a
system is never worse than rigid by a deformation its held-out images cannot tell from
noise (measured at −30 dB on the hinge path: learned motion that lowers the loss by
~1e-3 of its value, within the noise, and the RMSD by nothing; docs/results.md,
information_limit).

With a per-particle polish the held-out particles' polished latents are fitted to their
own images, so the choice is made on the estimates no per-particle fit chose
(``models.polish.Polished.unfitted``: the posterior mean over the population's candidates,
else the encoder's latents; ``train.run``) and applied to the polished models: the
motion the held-out images support is judged on the same kind of estimate that is written,
as far as no fit makes it biased (on the −10 dB hinge path the encoder's noisier latents
preferred α = 0.75, which cost the posterior mean 0.5 Å). The posterior mean does weigh
the candidates by each image's own likelihood, so it does not decide alone *whether* there
is motion: the held-out particles' amortized estimates (the encoder's, which no image's
likelihood weighed) must show it first (α > 0 on them), and only then is α chosen on the
posterior mean (``train.run``). Measured on the hinge path at −30 dB (sixteen segments, the
posterior mean at the 64-px box): its models lowered the held-out loss, and the loss on
independent Fourier halves of the same images (the estimate from one half judged on the
other), yet lay further from the true frames than the reference (4.89–5.08 against
4.84 Å over three training seeds), while the encoder's estimates showed no motion beyond
the noise; at −10 and −20 dB the encoder's estimates show the motion (α = 1) and nothing
changes. DeepHEMNMA's aligned particles are fitted to their own images too (and its
regressor trained on them), so there it is made on the regressor's estimates of the
particles that were not aligned.

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
    trainer,
    predictions: dict[str, np.ndarray],
    held_out: np.ndarray,
    scales: list[float],
    significance: float = 2.0,
) -> tuple[float, dict[float, float]]:
    """The α of ``scales`` the particles ``held_out`` prefer, rendered with their
    ``predictions`` (``Trainer.predict``'s latents, rotations, shifts, index) on
    ``trainer``'s unwrapped model; and the mean image loss of every α.

    The α with the lowest mean loss (ties to the larger α, the model as learned), unless
    its gain over α = 0, the reference, is below ``significance`` standard errors of the
    per-particle loss difference: then 0 (when 0 is one of ``scales``; 0 standard errors:
    the lowest loss alone)."""
    per_particle = held_out_losses(trainer, predictions, held_out, scales)
    losses = {scale: float(values.mean()) for scale, values in per_particle.items()}
    best = lowest_loss_scale(losses)
    if best != 0.0 and 0.0 in per_particle and significance > 0:
        gain = per_particle[0.0] - per_particle[best]
        error = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
        if not gain.mean() > significance * error:
            return 0.0, losses
    return best, losses


def lowest_loss_scale(losses: dict[float, float]) -> float:
    """The α of ``losses`` (α -> mean loss) with the lowest loss; ties go to the larger α
    (the model as learned)."""
    return min(sorted(losses, reverse=True), key=lambda scale: losses[scale])


@torch.no_grad()
def held_out_losses(
    trainer, predictions: dict[str, np.ndarray], held_out: np.ndarray, scales: list[float]
) -> dict[float, np.ndarray]:
    """The image loss (N,) of each particle of ``held_out`` at every α of ``scales``, in
    the order ``trainer.device_batches`` yields them."""
    module = trainer.module
    objective = trainer.phase.objective
    if not isinstance(objective, ReconstructionObjective):
        objective = ReconstructionObjective()  # e.g. a regression phase: the L2 loss
    row_of = {int(index): row for row, index in enumerate(predictions["index"])}
    was_training = module.training
    module.eval()
    losses: dict[float, list[np.ndarray]] = {scale: [] for scale in scales}
    try:
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
                loss = objective.image_loss(images, measured)
                losses[scale].append(loss.double().cpu().numpy())
    finally:
        module.motion_scale = 1.0
        module.train(was_training)
    return {
        scale: np.concatenate(values) if values else np.zeros(0) for scale, values in losses.items()
    }

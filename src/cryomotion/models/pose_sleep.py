"""A sleep phase for AtomVAE's pose posterior (wake–sleep, Hinton et al. 1995).

AtomVAE's first stage fits the pose posterior q(p | y) on the base structure by the
importance-weighted likelihood of the particles alone (the "wake" objective). The gradient
of that objective reaches the posterior's mean only as the local image gradient at the
best of its pose samples, so a posterior whose samples land far from the true pose learns
slowly: the seed trained this stage for 2,000 epochs of 63,000 particles.

In stage 1 the generative model is known (the base structure, the particles' CTFs, the
fitted gain, white noise of the measured σ), so it can also dream: draw poses from the
prior, render the base structure under them with each particle's CTF, add noise, and train
the pose posterior to recover the pose it was given (the "sleep" objective, a supervised
regression). Its loss is the chordal distance |R̂ − R|²_F (= 8 sin²(θ/2) for an error θ)
plus the squared shift error in units of the prior's scale, for the posterior mean. The
seed's discussion names wake–sleep training as the next thing to try; here it is an
optional phase before stage 1 (AtomVAE's ``dream_epochs``; 0 gives the seed's schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cryomotion.geometry.rotations import gram_schmidt
from cryomotion.models.objectives import Loss, ReconstructionObjective
from cryomotion.models.pose import PoseMode
from cryomotion.models.pose_latent import pose_from_latent


def pose_sleep_loss(module, batch: dict, noise_sigma: float = 1.0) -> torch.Tensor:
    """The sleep loss (module docstring) on dreamt images of ``batch``'s CTFs and optics
    groups, for a ``MotionModel`` ``module`` whose inference infers poses."""
    inference = module.inference
    images = batch["image"]
    count, device = images.shape[0], images.device
    with torch.no_grad():
        rotations = gram_schmidt(torch.randn(count, 6, device=device))
        shifts = inference.shift_scale * torch.randn(count, 2, device=device)
        points = module.deformation.rest().points
        rendered = module.renderer(points, rotations, shifts, batch.get("ctf"))
        rendered = module.intensity.scale_rendered(rendered, batch.get("optics_group"))
        dreams = rendered + noise_sigma * torch.randn_like(rendered)
    features = inference.trunk(dreams)
    condition = features.new_zeros(count, 1, inference.representation)
    mean, _ = inference.pose(features, condition)
    predicted = pose_from_latent(mean[:, 0], PoseMode.INFER, shift_scale=inference.shift_scale)
    chordal = (predicted.rotations - rotations).square().sum((-2, -1))
    shift = ((predicted.shifts - shifts) / inference.shift_scale).square().sum(-1)
    return (chordal + shift).mean()


@dataclass(frozen=True)
class PoseSleepObjective(ReconstructionObjective):
    """The sleep loss alone (AtomVAE's "dream" phase before its pose stage), for
    ``--pose-mode infer``; with poses refined around the file's, the wake objective (the
    inherited ``ReconstructionObjective``) instead. The wake objective is not added to the
    sleep loss: its gradient, the image gradient at the best pose sample, is orders of
    magnitude larger and, while the posterior is far from the poses, mostly noise that
    keeps the regression from learning (measured: 100° median error after 1,200 steps of
    wake + 100 × sleep on a rigid AdK simulation, against 23° for the sleep loss alone)."""

    def __call__(self, model, batch: dict, phase=None) -> Loss:
        module = getattr(model, "module", model)  # the DDP wrapper's model
        if getattr(module.inference, "pose_mode", None) is not PoseMode.INFER:
            return super().__call__(model, batch, phase)
        sleep = pose_sleep_loss(module, batch, self.noise_sigma)
        per_image = sleep.detach().expand(batch["image"].shape[0])
        return Loss(sleep, per_image, {"pose_sleep": sleep}, None)

"""The auto-decoder (3DFlex, seed 003): a latent vector per particle, inferred by
optimisation against the particle's own image.

There is no encoder. Each particle's latent z_i lives in a table (``ParticleState``:
buffers, per-row Adam, all-gathered across processes). Before each outer step the batch's
rows take ``inner_steps`` gradient steps on

    ‖ y_i − ŷ(z_i) ‖² / D²  +  prior_weight · ½ ‖z_i‖²

(the image L2 of the current phase's band limit, and the unit Gaussian prior that centres
the embedding and controls its spread, seed "Noise injection and prior"); the outer step
then renders with z_i + ε, ε ~ N(0, noise_std² I) (noise injection, a fixed-covariance
variational posterior in effect). The seed found coordinate descent equally good for
small K; gradient steps are used here for every K (one code path, shared with the pose
table). Latents start at zero or from another run (e.g. the seed's 3DVA embedding).
"""

from __future__ import annotations

import numpy as np
import torch

from cryomotion.imaging.likelihood import image_l2
from cryomotion.imaging.pose import Pose
from cryomotion.models.inference import Estimates, Inference
from cryomotion.models.per_particle import ParticleState

# Inner steps at prediction shrink to this fraction of the inner learning rate.
PREDICT_FINAL_RATE = 0.1


class LatentTable(Inference):
    """Per-particle latents (N, K) optimised per batch (see the module docstring).

    Parameters
    ----------
    n_particles, latent_dim : N, K.
    inner_steps : gradient steps per batch before each outer step (phases training
        "latents"); predict_steps : steps per particle when latents are predicted.
    inner_lr : the per-row Adam's step in latent units.
    noise_std : standard deviation of the noise added to z in training renders.
    prior_weight : weight of ½‖z‖² against the per-pixel mean squared error.
    init : optional (N, K) initial latents (default zeros).
    """

    def __init__(
        self,
        n_particles: int,
        latent_dim: int,
        inner_steps: int = 5,
        inner_lr: float = 0.1,
        predict_steps: int = 30,
        noise_std: float = 0.1,
        prior_weight: float = 1e-3,
        init: np.ndarray | None = None,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.inner_steps = int(inner_steps)
        self.predict_steps = int(predict_steps)
        self.noise_std = float(noise_std)
        self.prior_weight = float(prior_weight)
        self.table = ParticleState(n_particles, [inner_lr] * self.latent_dim)
        if init is not None:
            init = np.asarray(init, dtype=np.float32)
            if init.shape != (n_particles, self.latent_dim):
                raise ValueError(
                    f"initial latents {init.shape}: expected ({n_particles}, {self.latent_dim})"
                )
            self.table.values.copy_(torch.as_tensor(init))

    def per_particle_state(self) -> list[str]:
        return [f"table.{name}" for name, _ in self.table.named_buffers()]

    def prior(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., K) -> (...) ½‖z‖², the negative log of the unit Gaussian prior (+ const)."""
        return 0.5 * latents.square().sum(-1)

    def forward(self, images: torch.Tensor, batch: dict, samples: int = 1) -> Estimates:
        """The table's rows for ``batch["index"]``, with injected noise in training; the
        pose is the file's."""
        rows = self.table.rows(batch["index"])
        latents = rows[:, None, :].expand(rows.shape[0], samples, rows.shape[1])
        if self.training and self.noise_std > 0:
            latents = latents + self.noise_std * torch.randn_like(latents)
        pose = Pose(batch["rotation"], batch["shift"].float())
        return Estimates(latents, rows, pose, {"latent_prior": self.prior(rows)})

    def infer(self, model, batch: dict, phase=None, predict: bool = False) -> None:
        """The inner loop: the batch's rows take ``inner_steps`` (``predict_steps`` when
        predicting, with steps shrinking) Adam steps on their image loss + prior, rendered
        by ``model`` (the unwrapped ``MotionModel``) with the phase's band limit. Phases
        that do not train "latents" keep them fixed."""
        if not predict and phase is not None and not phase.trains("latents"):
            return
        steps = self.predict_steps if predict else self.inner_steps
        if steps <= 0:
            return
        measured = model.intensity.normalize(batch["image"])
        pose = Pose(batch["rotation"], batch["shift"].float())
        max_frequency = None if phase is None else phase.max_frequency

        def loss(rows: torch.Tensor) -> torch.Tensor:
            images, _ = model.decode(
                rows[:, None, :],
                pose,
                batch.get("ctf"),
                batch.get("optics_group"),
                measured,
                max_frequency=max_frequency,
            )
            return image_l2(images[:, 0], measured) + self.prior_weight * self.prior(rows)

        self.table.optimize_rows(
            batch["index"], loss, steps, final_rate=PREDICT_FINAL_RATE if predict else 1.0
        )

    def sync(self, index: torch.Tensor) -> None:
        self.table.sync_rows(index)

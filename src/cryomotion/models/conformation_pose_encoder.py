"""AtomVAE's inference (seed 002 appendix): a conformation posterior and, conditioned on
each conformation sample, a pose posterior.

    image (D²) ─ LN ─ MLP 2048, 1024, 512, 512 ─► features f
    q(z | y)      = N(μ_z, σ_z²):  μ_z = W LN(f), σ_z = softplus(W' LN(f))        (d = 32)
    q(p | y, z)   = N(μ_p, σ_p²):  a = W_f LN(f) + W_h h(z),  h = the decoder's
                    representation of z;  MLP 32, 32, 32 on a;  μ_p, σ_p = softplus(...)  (8)

Samples: ``samples`` (S1, S2) draws S1 conformations per image and S2 poses per
conformation, so the decoder renders (B, S1, S2) images (``Estimates.sample_pose``). With
S1 = 0 the conformation is not sampled (AtomVAE's first stage renders the base structure)
and the pose posterior is conditioned on nothing (h = 0). In eval mode (writing latents)
the conformation is the posterior mean and the pose the pose posterior's mean given it.

Deviation from the seed: the seed adds h(z) itself; here h passes through W_h, a linear
layer that starts at zero, so that the pose posterior trained in the first stage (with
h = 0) is unchanged when the second stage starts to condition it on h(z).

With ``--pose-mode given`` there is no pose posterior: the pose is the file's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cryomotion.deform.residue_frames import truncated_normal_
from cryomotion.imaging.pose import Pose
from cryomotion.models.encoder import MLPTrunk
from cryomotion.models.inference import Estimates, Inference
from cryomotion.models.pose import PoseMode
from cryomotion.models.pose_latent import POSE_LATENT_DIM, pose_from_latent
from cryomotion.models.variational import gaussian_kl

# floor of a posterior standard deviation (keeps log σ² finite)
SD_FLOOR = 1e-4


class GaussianHead(nn.Module):
    """(..., F) -> mean (..., out) and standard deviation (..., out), softplus + floor."""

    def __init__(self, n_in: int, n_out: int, zero_mean: bool = False):
        super().__init__()
        self.mean = truncated_normal_(nn.Linear(n_in, n_out))
        if zero_mean:
            nn.init.zeros_(self.mean.weight)
        self.sd = truncated_normal_(nn.Linear(n_in, n_out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(x), F.softplus(self.sd(x)) + SD_FLOOR


class PosePosterior(nn.Module):
    """q(p | y, z): features (B, F) and conditions h (B, S, C) -> mean, sd (B, S, 8)."""

    def __init__(
        self,
        n_features: int,
        n_condition: int,
        hidden: tuple[int, ...] = (32, 32, 32),
        zero_mean: bool = False,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(n_features)
        self.features = truncated_normal_(nn.Linear(n_features, n_condition))
        self.condition = nn.Linear(n_condition, n_condition)
        nn.init.zeros_(self.condition.weight)
        nn.init.zeros_(self.condition.bias)
        layers: list[nn.Module] = []
        n_in = n_condition
        for width in hidden:
            layers += [truncated_normal_(nn.Linear(n_in, width)), nn.LeakyReLU()]
            n_in = width
        self.mlp = nn.Sequential(*layers)
        self.head = GaussianHead(n_in, POSE_LATENT_DIM, zero_mean=zero_mean)

    def forward(
        self, features: torch.Tensor, condition: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.features(self.norm(features))[:, None, :] + self.condition(condition)
        return self.head(self.mlp(a))


class ConformationPoseEncoder(Inference):
    """AtomVAE's inference (module docstring).

    box : image size (px); latent_dim : d; represent : the decoder's z -> h(z) (not a
    submodule here: its parameters belong to the deformation); representation : width of
    h; pose_mode : given, refine or infer; shift_scale : Å per unit of the pose latent's
    translation; rotation_scale : refine's scale of the rotation correction.
    """

    variational = True

    def __init__(
        self,
        box: int,
        latent_dim: int,
        represent: Callable[[torch.Tensor], torch.Tensor],
        representation: int = 512,
        trunk: tuple[int, ...] = (2048, 1024, 512, 512),
        pose_hidden: tuple[int, ...] = (32, 32, 32),
        pose_mode: PoseMode = PoseMode.INFER,
        shift_scale: float = 2.0,
        rotation_scale: float = 0.1,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.trunk = MLPTrunk(box, tuple(trunk))
        n_features = self.trunk.n_features
        self.conformation_norm = nn.LayerNorm(n_features)
        self.conformation = GaussianHead(n_features, self.latent_dim)
        self.pose_mode = PoseMode.parse(pose_mode)
        self.pose = None
        if self.pose_mode is not PoseMode.GIVEN:
            refine = self.pose_mode is PoseMode.REFINE
            self.pose = PosePosterior(n_features, representation, pose_hidden, zero_mean=refine)
        # a plain attribute, not a submodule: the decoder's parameters are the deformation's
        self._represent = [represent]
        self.representation = representation
        self.shift_scale = float(shift_scale)
        self.rotation_scale = float(rotation_scale)

    def _pose(self, latent: torch.Tensor, given: Pose) -> Pose:
        return pose_from_latent(
            latent, self.pose_mode, given, self.shift_scale, self.rotation_scale
        )

    def forward(
        self, images: torch.Tensor, batch: dict, samples: int | tuple[int, int] = 1
    ) -> Estimates:
        s1, s2 = (int(samples), 1) if isinstance(samples, int) else map(int, samples)
        features = self.trunk(images.float())
        mean, sd = self.conformation(self.conformation_norm(features))
        log_var = 2.0 * sd.log()
        batch_size = mean.shape[0]
        priors: dict[str, torch.Tensor] = {}
        if self.training and s1 > 0:
            noise = torch.randn(batch_size, s1, self.latent_dim, device=mean.device)
            latents = mean[:, None, :] + sd[:, None, :] * noise
        else:
            latents = mean[:, None, :]
        if s1 > 0:
            priors["latent_kl"] = gaussian_kl(mean, log_var)
        given = Pose(batch["rotation"].float(), batch["shift"].float())
        if self.pose is None:
            return Estimates(latents, mean, given, priors, log_var)

        represent = self._represent[0]
        at_mean = represent(mean[:, None, :]) if s1 > 0 else None
        if at_mean is None:
            at_mean = features.new_zeros(batch_size, 1, self.representation)
        pose_mean, _ = self.pose(features, at_mean)
        mean_pose = self._pose(pose_mean[:, 0], given)
        if not self.training:
            return Estimates(latents, mean, mean_pose, priors, log_var)
        condition = represent(latents) if s1 > 0 else at_mean
        sample_mean, sample_sd = self.pose(features, condition)  # (B, S1', 8)
        noise = torch.randn(*sample_mean.shape[:2], s2, POSE_LATENT_DIM, device=mean.device)
        pose_latents = sample_mean[:, :, None, :] + sample_sd[:, :, None, :] * noise
        expanded = Pose(given.rotations[:, None, None], given.shifts[:, None, None])
        sample_pose = self._pose(pose_latents, expanded)  # (B, S1', S2)
        priors["pose_kl"] = gaussian_kl(sample_mean, 2.0 * sample_sd.log()).mean(dim=1)
        return Estimates(latents, mean, mean_pose, priors, log_var, sample_pose)

"""A pose per conformation sample (AtomVAE): the broadcast render equals one render per
(conformation, pose) pair, and the Gaussian log-mean-exp objective equals its formula."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.deform.residue_frames import ResidueFrameDeformation
from cryomotion.imaging.pose import Pose
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.conformation_pose_encoder import ConformationPoseEncoder
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.motion_model import MotionModel
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.pose import PoseMode
from cryomotion.structure.io import read_model

BOX, PIXEL = 24, 4.0


@pytest.fixture(scope="module")
def model(adk_open_path):
    torch.manual_seed(0)
    adk = read_model(adk_open_path)
    deformation = ResidueFrameDeformation(adk, 4, width=16, blocks=1, representation=8, coarse=True)
    with torch.no_grad():
        deformation.decoder.frames.weight.normal_(0.0, 0.2)  # visible deformations
    renderer = AtomRenderer(
        deformation.scatterers(), BOX, PIXEL, rotation_center=adk.coords.mean(0)
    )
    inference = ConformationPoseEncoder(
        BOX,
        4,
        deformation.represent,
        representation=8,
        trunk=(16,),
        pose_hidden=(8,),
        pose_mode=PoseMode.INFER,
    )
    motion = MotionModel(inference, deformation, renderer, IntensityScale(1, "fitted"))
    with torch.no_grad():
        motion.intensity.log_gain.fill_(math.log(0.05))
    return motion


def _ctf(batch: int) -> torch.Tensor:
    ctf = torch.zeros(batch, 8)
    ctf[:, 0] = ctf[:, 1] = torch.linspace(8000, 15000, batch)
    ctf[:, 3], ctf[:, 4], ctf[:, 5] = 300.0, 2.7, 0.1
    return ctf


def test_sample_poses_render_like_one_by_one(model):
    b, s1, s2 = 2, 3, 2
    latents = torch.randn(b, s1, 4)
    rotations = torch.as_tensor(
        Rotation.random(b * s1 * s2, random_state=1).as_matrix(), dtype=torch.float32
    )
    pose = Pose(rotations.reshape(b, s1, s2, 3, 3), torch.randn(b, s1, s2, 2))
    ctf = _ctf(b)
    with torch.no_grad():
        images, terms = model.decode(latents, pose, ctf)
        assert images.shape == (b, s1 * s2, BOX, BOX)
        assert set(terms) == {"continuity", "centering"}
        gain = model.intensity.log_gain.exp()
        for i in range(b):
            for j in range(s1):
                points = model.deformation(latents[i, j][None]).points
                for k in range(s2):
                    one = model.renderer(
                        points,
                        pose.rotations[i, j, k][None],
                        pose.shifts[i, j, k][None],
                        ctf[i][None],
                    )
                    torch.testing.assert_close(
                        images[i, j * s2 + k], gain * one[0], atol=1e-5, rtol=1e-4
                    )
        # without the conformation: the rest points under every pose sample
        rest, terms = model.decode(
            latents[:, :1],
            Pose(pose.rotations[:, :1], pose.shifts[:, :1]),
            ctf,
            use_conformation=False,
        )
        assert terms == {}
        one = model.renderer(
            model.deformation.reference,
            pose.rotations[1, 0, 1][None],
            pose.shifts[1, 0, 1][None],
            ctf[1][None],
        )
        torch.testing.assert_close(rest[1, 1], gain * one[0], atol=1e-5, rtol=1e-4)


def test_gaussian_logmeanexp_objective_is_its_formula(model):
    torch.manual_seed(2)
    b = 3
    given = torch.as_tensor(Rotation.random(b, random_state=3).as_matrix(), dtype=torch.float32)
    batch = {
        "image": torch.randn(b, BOX, BOX),
        "rotation": given,
        "shift": torch.zeros(b, 2),
        "ctf": _ctf(b),
        "index": torch.arange(b),
    }
    sigma = 0.7
    objective = ReconstructionObjective(
        "gaussian",
        samples=2,
        reduce="logmeanexp",
        pose_samples=3,
        noise_sigma=sigma,
        prior_weights={"latent_kl": 1.0, "pose_kl": 0.01},
    )
    model.train()
    torch.manual_seed(5)
    loss = objective(model, batch)
    torch.manual_seed(5)
    output = model(batch, samples=(2, 3))
    with torch.no_grad():
        images = model.decode(output.estimates.latents, output.estimates.sample_pose, batch["ctf"])[
            0
        ]
    assert images.shape == (b, 6, BOX, BOX)
    n = BOX * BOX
    residual = (images - output.measured[:, None]).square().sum((-2, -1))
    log_likelihood = -residual / (2 * sigma**2) - 0.5 * n * math.log(2 * math.pi * sigma**2)
    expected = -(torch.logsumexp(log_likelihood, dim=1) - math.log(6))
    torch.testing.assert_close(loss.per_image.detach(), expected, rtol=1e-4, atol=1e-2)
    # and the real-space path (evaluation) gives the same for the same images
    torch.testing.assert_close(
        objective.image_loss(images, output.measured), expected, rtol=1e-4, atol=1e-2
    )
    kl = output.estimates.priors
    total = (
        expected.mean()
        + kl["latent_kl"].mean()
        + 0.01 * kl["pose_kl"].mean()
        + sum(output.regularization.values())
    )
    torch.testing.assert_close(loss.total.detach(), total.detach(), rtol=1e-4, atol=1e-2)
    # stage 1: no conformation samples; the priors lack the conformation's KL
    stage1 = ReconstructionObjective("gaussian", samples=1, reduce="logmeanexp", pose_samples=4)
    from cryomotion.models.schedule import Phase

    loss = stage1(model, batch, Phase("poses", 1, stage1, use_conformation=False))
    assert set(loss.terms) == {"pose_kl"}

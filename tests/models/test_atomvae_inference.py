"""AtomVAE's pose latent and its conformation / pose posteriors."""

from __future__ import annotations

import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.geometry.rotations import gram_schmidt
from cryomotion.imaging.pose import Pose
from cryomotion.models.conformation_pose_encoder import ConformationPoseEncoder
from cryomotion.models.pose import PoseMode
from cryomotion.models.pose_latent import pose_from_latent


def _given(batch: int) -> Pose:
    rotations = torch.as_tensor(
        Rotation.random(batch, random_state=0).as_matrix(), dtype=torch.float32
    )
    return Pose(rotations, torch.randn(batch, 2))


def test_infer_pose_is_gram_schmidt_and_scaled_shift():
    latent = torch.randn(5, 8)
    pose = pose_from_latent(latent, PoseMode.INFER, shift_scale=3.0)
    torch.testing.assert_close(pose.rotations, gram_schmidt(latent[:, 2:]))
    torch.testing.assert_close(pose.shifts, 3.0 * latent[:, :2])


def test_prior_of_the_rotation_latent_is_uniform():
    # Haar measure: E[R] = 0 and E[R_ij²] = 1/3; Gram–Schmidt of N(0, I) 6-vectors has both
    torch.manual_seed(0)
    rotations = pose_from_latent(
        torch.randn(40000, 8, dtype=torch.float64), PoseMode.INFER
    ).rotations
    assert rotations.mean(0).abs().max() < 0.015
    torch.testing.assert_close(
        rotations.square().mean(0),
        torch.full((3, 3), 1 / 3, dtype=torch.float64),
        atol=0.01,
        rtol=0,
    )


def test_refine_at_zero_is_the_file_pose_and_corrects_around_it():
    given = _given(4)
    pose = pose_from_latent(torch.zeros(4, 8), PoseMode.REFINE, given, 2.0, 0.1)
    torch.testing.assert_close(pose.rotations, given.rotations)
    torch.testing.assert_close(pose.shifts, given.shifts)
    latent = torch.zeros(4, 8)
    latent[:, 0] = 1.0
    latent[:, 7] = 1.0  # v2 = (0, 1, 0.1): a rotation about x by atan(0.1)
    pose = pose_from_latent(latent, PoseMode.REFINE, given, 2.0, 0.1)
    torch.testing.assert_close(pose.shifts[:, 0], given.shifts[:, 0] + 2.0)
    about_x = torch.as_tensor(
        Rotation.from_rotvec([torch.atan(torch.tensor(0.1)).item(), 0, 0]).as_matrix(),
        dtype=torch.float32,
    )
    torch.testing.assert_close(pose.rotations, given.rotations @ about_x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        pose_from_latent(latent, PoseMode.GIVEN, given)


def _encoder(mode: PoseMode, represent=None):
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 16)
    represent = represent or (lambda z: linear(z))
    return ConformationPoseEncoder(
        8, 3, represent, representation=16, trunk=(32, 16), pose_hidden=(8, 8), pose_mode=mode
    )


def _batch(n: int) -> dict:
    given = _given(n)
    return {"rotation": given.rotations, "shift": given.shifts}


def test_samples_per_conformation_and_stage_one():
    encoder = _encoder(PoseMode.INFER).train()
    images, batch = torch.randn(4, 8, 8), _batch(4)
    out = encoder(images, batch, (5, 3))
    assert out.latents.shape == (4, 5, 3)
    assert out.sample_pose.rotations.shape == (4, 5, 3, 3, 3)
    assert out.sample_pose.shifts.shape == (4, 5, 3, 2)
    assert out.pose.rotations.shape == (4, 3, 3)
    assert set(out.priors) == {"latent_kl", "pose_kl"}
    assert all(v.shape == (4,) for v in out.priors.values())
    # stage 1: no conformation sample, no conformation KL; poses of the base structure
    out = encoder(images, batch, (0, 7))
    assert out.sample_pose.rotations.shape == (4, 1, 7, 3, 3)
    assert set(out.priors) == {"pose_kl"}
    # eval: the posterior means, one pose per image
    encoder.eval()
    out = encoder(images, batch, 1)
    assert out.sample_pose is None and out.pose.rotations.shape == (4, 3, 3)
    torch.testing.assert_close(out.latents[:, 0], out.mean_latents)


def test_conditioning_starts_at_zero():
    # the pose posterior of stage 1 (condition 0) is unchanged when stage 2 conditions it
    encoder = _encoder(PoseMode.INFER).eval()
    features = encoder.trunk(torch.randn(4, 8, 8))
    zero = encoder.pose(features, torch.zeros(4, 1, 16))
    some = encoder.pose(features, torch.randn(4, 1, 16))
    torch.testing.assert_close(zero[0], some[0])
    torch.testing.assert_close(zero[1], some[1])


def test_given_and_refine_start_at_the_file_pose():
    images, batch = torch.randn(3, 8, 8), _batch(3)
    given = _encoder(PoseMode.GIVEN).train()
    out = given(images, batch, (4, 2))
    assert out.sample_pose is None and "pose_kl" not in out.priors
    torch.testing.assert_close(out.pose.rotations, batch["rotation"])
    refine = _encoder(PoseMode.REFINE).eval()
    out = refine(images, batch, 1)
    torch.testing.assert_close(out.pose.rotations, batch["rotation"])
    torch.testing.assert_close(out.pose.shifts, batch["shift"])


def test_gradients_reach_trunk_heads_and_decoder():
    decoder = torch.nn.Linear(3, 16)
    encoder = _encoder(PoseMode.INFER, represent=decoder).train()
    out = encoder(torch.randn(4, 8, 8), _batch(4), (2, 2))
    loss = (
        out.sample_pose.rotations.sum()
        + out.sample_pose.shifts.square().sum()
        + sum(v.sum() for v in out.priors.values())
    )
    loss.backward()
    assert encoder.trunk.trunk[1].weight.grad.abs().sum() > 0
    assert encoder.conformation.mean.weight.grad.abs().sum() > 0
    assert encoder.pose.head.mean.weight.grad.abs().sum() > 0
    # the decoder's representation conditions the poses (through the zero-initialised
    # linear layer, whose own weights receive the gradient first)
    assert encoder.pose.condition.weight.grad.abs().sum() > 0

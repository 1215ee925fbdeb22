"""The amortized encoder's rotation-correction head: R = R_file · exp([ω]×)."""

import math

import pytest
import torch

from cryomotion.geometry.rotations import rotvec_to_matrix
from cryomotion.models.encoder import ImageEncoder
from cryomotion.models.inference import AmortizedEncoder

BOX = 16


def encoder_with_rotation(rotation_scale: float) -> AmortizedEncoder:
    torch.manual_seed(0)
    heads = {"shifts": 2, "latents": 2, "rotation": 3}
    return AmortizedEncoder(ImageEncoder(BOX, heads, width=0.25), 2, rotation_scale=rotation_scale)


def batch_of(n: int) -> dict:
    rotvecs = torch.randn(n, 3, generator=torch.Generator().manual_seed(2))
    return {"rotation": rotvec_to_matrix(rotvecs), "shift": torch.randn(n, 2)}


def test_a_fresh_rotation_head_keeps_the_file_pose():
    inference = encoder_with_rotation(math.radians(20)).eval()
    batch = batch_of(3)
    estimates = inference(torch.randn(3, BOX, BOX), batch)
    torch.testing.assert_close(estimates.pose.rotations, batch["rotation"])


def test_the_head_output_turns_the_pose_in_the_model_frame():
    scale = math.radians(20)
    inference = encoder_with_rotation(scale).eval()
    head = inference.encoder.heads["rotation"].mlp[-1]
    omega = torch.tensor([0.3, -0.5, 0.2])  # head units
    with torch.no_grad():
        head.bias.copy_(omega)
    batch = batch_of(4)
    estimates = inference(torch.randn(4, BOX, BOX), batch)
    expected = batch["rotation"] @ rotvec_to_matrix(omega * scale)
    torch.testing.assert_close(estimates.pose.rotations, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(estimates.pose.shifts, batch["shift"])  # shift head at 0


def test_the_rotation_head_and_its_scale_go_together():
    with pytest.raises(ValueError, match="do not match"):
        AmortizedEncoder(ImageEncoder(BOX, {"shifts": 2, "latents": 2}, width=0.25), 2, 1.0, False,
                         False, 0.1)  # fmt: skip
    with pytest.raises(ValueError, match="do not match"):
        encoder_with_rotation(0.0)

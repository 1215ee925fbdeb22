"""Imaging fixtures: every device test runs on the CPU and, where available, on CUDA."""

import pytest
import torch
from imaging_reference import DEVICES


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)

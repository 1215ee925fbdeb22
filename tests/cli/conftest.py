"""A tiny simulated dataset shared by the training-verb tests."""

import pytest


@pytest.fixture(scope="module")
def simulated(simulate_with_cli, adk_closed_path):
    """40 AdK particles (5-frame morph, 32 px at 3 Å/px, SNR 1) written by `simulate`."""
    return simulate_with_cli("train_cli", adk_closed_path, 5, 40, 32, 3.0)

"""A tiny simulated dataset shared by the training-verb tests."""

import pytest

from cryomotion.cli.main import main


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, adk_open_path, adk_closed_path):
    """40 AdK particles (5-frame morph, 32 px at 3 Å/px, SNR 1) written by `simulate`."""
    sim = tmp_path_factory.mktemp("train_cli") / "sim"
    assert main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "5",
        "--particles", "40", "--box", "32", "--pixel-size", "3.0", "--snr", "1",
        "--seed", "0", "--no-progress", "-o", str(sim),
    ]) == 0  # fmt: skip
    return sim

"""Shared fixtures: bundled and test structures."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

TEST_FILES = Path(__file__).parent / "data_files"


@pytest.fixture(scope="session")
def adk_open_path() -> Path:
    return Path(str(files("cryomotion") / "resources" / "adk_open.pdb"))


@pytest.fixture(scope="session")
def adk_closed_path() -> Path:
    return Path(str(files("cryomotion") / "resources" / "adk_closed.pdb"))


@pytest.fixture(scope="session")
def hiv_protease_path() -> Path:
    """PDB 1HVR: two chains, a HETATM ligand and waters."""
    return TEST_FILES / "1hvr.pdb"


@pytest.fixture(scope="session")
def gramicidin_path() -> Path:
    return TEST_FILES / "1grm_single.pdb"


@pytest.fixture(scope="session")
def simulate_with_cli(tmp_path_factory, adk_open_path):
    """A function writing an AdK dataset with ``cryomotion simulate`` (open -> ``closed``,
    seed 0, no progress bar) into a fresh folder; returns the dataset folder."""
    from cryomotion.cli.main import main

    def simulate(name, closed, frames, particles, box, pixel_size, snr="1"):
        sim = tmp_path_factory.mktemp(name) / "sim"
        assert main([
            "simulate", "--endpoints", str(adk_open_path), str(closed), "--frames", str(frames),
            "--particles", str(particles), "--box", str(box), "--pixel-size", str(pixel_size),
            "--snr", str(snr), "--seed", "0", "--no-progress", "-o", str(sim),
        ]) == 0  # fmt: skip
        return sim

    return simulate

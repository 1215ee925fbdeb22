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

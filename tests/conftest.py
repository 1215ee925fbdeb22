"""Shared fixtures: bundled and test structures."""

from __future__ import annotations

import re
import shutil
import subprocess
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


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]  # fmt: skip


@pytest.fixture
def chromium_images(tmp_path):
    """A function loading an HTML page in headless Chromium: returns (images decoded,
    images) and leaves a screenshot of the page in ``tmp_path`` (the test's artefacts);
    the test is skipped where Chromium is not installed."""
    if shutil.which("chromium") is None:
        pytest.skip("headless Chromium not installed")

    def load(page: Path) -> tuple[int, int]:
        # the DOM after load, with a script counting images that decoded (naturalWidth > 0)
        probe = page.with_name(f"{page.stem}_probe.html")
        script = (
            "<script>window.onload=()=>{const i=[...document.images];"
            "document.title=i.filter(x=>x.naturalWidth>0).length+'/'+i.length;}</script>"
        )
        probe.write_text(page.read_text().replace("</body>", script + "</body>"))
        profile = f"--user-data-dir={tmp_path / 'chromium-profile'}"
        out = subprocess.run(
            ["chromium", *CHROMIUM_FLAGS, profile, "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        probe.unlink()
        subprocess.run(
            ["chromium", *CHROMIUM_FLAGS, profile, "--window-size=1200,2400",
             f"--screenshot={tmp_path / (page.stem + '.png')}", page.as_uri()],
            capture_output=True, timeout=120,
        )  # fmt: skip
        loaded, total = re.search(r"<title>(\d+)/(\d+)</title>", out.stdout).groups()
        return int(loaded), int(total)

    return load

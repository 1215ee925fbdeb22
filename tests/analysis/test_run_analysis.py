"""`cryomotion analyze` on a real (tiny) training run of simulated data."""

import re
import shutil
import subprocess

import mrcfile
import numpy as np
import pytest
import starfile

from cryomotion.cli.main import main


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, adk_open_path, adk_closed_path):
    root = tmp_path_factory.mktemp("analysis")
    sim, run = root / "sim", root / "run"
    assert main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "6",
        "--particles", "48", "--box", "32", "--pixel-size", "3.0", "--snr", "1",
        "--seed", "0", "--no-progress", "-o", str(sim),
    ]) == 0  # fmt: skip
    assert main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(run),
        "--modes", "3", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
        "--workers", "0",
    ]) == 0  # fmt: skip
    return sim, run


@pytest.fixture(scope="module")
def analysis(trained_run):
    _, run = trained_run
    assert main(["analyze", str(run), "--states", "3", "--pcs", "2", "--frames", "4"]) == 0
    return run / "analysis"


def test_states_partition_the_particles_and_keep_the_star_columns(trained_run, analysis):
    sim, _ = trained_run
    original = starfile.read(sim / "particles.star")
    seen = []
    for k in (1, 2, 3):
        indices = np.loadtxt(analysis / f"state_{k}_indices.txt", dtype=int, ndmin=1)
        subset = starfile.read(analysis / f"particles_state_{k}.star")
        assert list(subset["particles"].columns) == list(original["particles"].columns)
        assert subset["optics"].equals(original["optics"])
        assert len(subset["particles"]) == len(indices)
        names = original["particles"]["rlnImageName"].to_numpy()[indices]
        assert np.array_equal(subset["particles"]["rlnImageName"].to_numpy(), names)
        seen.extend(indices.tolist())
    assert sorted(seen) == list(range(48))


def test_structures_and_maps(analysis):
    from cryomotion.structure.io import read_trajectory

    frames = read_trajectory(analysis / "pc1_trajectory.pdb")
    assert frames.shape[0] == 4
    with mrcfile.open(analysis / "state_1.mrc") as mrc:
        assert mrc.data.shape == (32, 32, 32)
        assert np.isclose(mrc.voxel_size.x, 3.0)
        assert mrc.data.max() > 0
    script = (analysis / "analysis.cxc").read_text()
    assert "open pc1_trajectory.pdb coordsets true" in script


def test_report_embeds_every_image_and_links_existing_files(analysis):
    page = (analysis / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
    for target in re.findall(r'href="([^"]+)"', page):
        assert (analysis / target).is_file(), target
    assert "Against the ground truth" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed")
def test_report_images_load_in_chromium(analysis, tmp_path):
    # Render the page's DOM after load and count images that decoded (naturalWidth > 0).
    probe = tmp_path / "probe.html"
    page = (analysis / "report.html").read_text()
    script = (
        "<script>window.onload=()=>{const i=[...document.images];"
        "document.title=i.filter(x=>x.naturalWidth>0).length+'/'+i.length;}</script>"
    )
    probe.write_text(page.replace("</body>", script + "</body>"))
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    loaded, total = re.search(r"<title>(\d+)/(\d+)</title>", out.stdout).groups()
    assert int(total) >= 5 and loaded == total


def test_umap_embeds_the_latents_or_names_the_missing_extra(trained_run, tmp_path, capsys):
    _, run = trained_run
    code = main(["analyze", str(run), "-o", str(tmp_path / "u"), "--umap", "--states", "2",
                 "--no-maps"])  # fmt: skip
    try:
        import umap  # noqa: F401
    except ImportError:
        assert code == 2
        assert "umap-learn" in capsys.readouterr().err
        return
    assert code == 0
    assert np.load(tmp_path / "u" / "umap.npy").shape == (48, 2)
    assert (tmp_path / "u" / "latent_umap.png").is_file()

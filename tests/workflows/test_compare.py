"""``cryomotion compare``: two systems on one dataset, one page; and what it measures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cryomotion.analysis.comparison import heldout_misfit, pairwise_agreement, shared_landscape
from cryomotion.cli.main import main
from cryomotion.errors import InputError
from cryomotion.train.results import load_run
from cryomotion.workflows.compare import CompareSettings, train_systems


@pytest.fixture(scope="module")
def compared(simulate_with_cli, adk_closed_path, tmp_path_factory):
    sim = simulate_with_cli("compare", adk_closed_path, 10, 160, 32, 3.0, snr="0.1")
    out = tmp_path_factory.mktemp("compare") / "cmp"
    args = ["compare", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(out),
            "--systems", "nma,segments", "--epochs", "1", "--batch-size", "32",
            "--test-fraction", "0.25", "--reconstruct"]  # fmt: skip
    assert main(args) == 0
    return sim, out, args


def test_compare_writes_one_page_for_both_systems(compared):
    _, out, _ = compared
    page = (out / "compare.html").read_text()
    for name in ("nma", "segments"):
        assert (out / name / "latents.npz").is_file()
        assert (out / name / "analysis" / "report.html").is_file()
        assert f"<td>{name}</td>" in page
    assert page.count("data:image/png;base64,") >= 3  # disagreement, motions, landscapes
    with open(out / "compare.tsv") as handle:
        rows = {row["system"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == {"nma", "segments"}
    for row in rows.values():
        # a model near the truth explains held-out images to about the noise: χ² ≈ 1/pixel
        assert 0.9 < float(row["heldout_misfit"]) < 1.3
        assert float(row["median_rmsd"]) > 0 and float(row["epochs"]) == 1
        # each state's data map against its model: finite, no finer than Nyquist (6 Å)
        assert 6.0 <= float(row["median_model_vs_data_fsc05_A"]) < 100
    costs = json.loads((out / "cost.json").read_text())
    assert all(costs[name]["peak_memory_mib"] > 50 for name in ("nma", "segments"))


def test_compare_again_reuses_finished_runs(compared):
    sim, out, _ = compared
    latents = out / "nma" / "latents.npz"
    before = latents.stat().st_mtime_ns
    settings = CompareSettings(systems=("nma", "segments"), epochs=1, batch_size=32,
                               test_fraction=0.25)  # fmt: skip
    costs = train_systems(str(sim / "particles.star"), str(sim / "reference.pdb"), out, settings)
    assert latents.stat().st_mtime_ns == before
    assert set(costs) == {"nma", "segments"}


def test_compare_images_load_in_chromium(compared, chromium_images):
    _, out, _ = compared
    loaded, total = chromium_images(out / "compare.html")
    assert total >= 3 and loaded == total


def test_unknown_system_is_refused_before_any_training():
    with pytest.raises(InputError, match="unknown nope"):
        CompareSettings(systems=("nma", "nope")).chosen()
    with pytest.raises(InputError, match="named twice"):
        CompareSettings(systems=("nma", "nma")).chosen()


def test_heldout_misfit_of_the_true_model_is_the_noise(simulate_with_cli, adk_open_path, tmp_path):
    """Rigid data (open -> open) scored with the reference, which is every particle's true
    model: the residual is the noise alone, χ² = 1 per pixel in noise units; a model moved
    by 3 Å explains the images worse."""
    sim = simulate_with_cli("rigid_misfit", adk_open_path, 2, 200, 32, 3.0, snr="0.05")
    run_dir = tmp_path / "run"
    assert main(["train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o",
                 str(run_dir), "--modes", "0", "--epochs", "0", "--no-progress"]) == 0  # fmt: skip
    run = load_run(run_dir)
    particles = run.particle_index[:200]
    truth = heldout_misfit(run, particles, rigid=True)
    assert abs(float(np.mean(truth)) - 1.0) < 0.05
    shifted = load_run(run_dir)
    object.__setattr__(shifted, "shifts", shifted.shifts + 3.0)
    assert float(np.mean(heldout_misfit(shifted, particles))) > float(np.mean(truth)) + 0.01


def test_agreement_and_shared_landscape_recover_a_known_motion():
    rng = np.random.default_rng(0)
    reference = rng.normal(scale=10.0, size=(50, 3))
    direction = rng.normal(size=(50, 3))
    direction /= np.linalg.norm(direction)
    amplitude = rng.uniform(-5, 5, size=200)
    first = reference + amplitude[:, None, None] * direction
    second = first.copy()
    second[:, 0] += [1.0, 0.0, 0.0]  # one atom 1 Å away in the second system
    rmsd = pairwise_agreement({"a": first, "b": second})[("a", "b")]
    assert rmsd.shape == (200,)
    # 1 Å on one of 50 atoms: √(1/50) Å before superposition, a little less after
    assert np.all((rmsd > 0.12) & (rmsd <= np.sqrt(1 / 50) + 1e-9))
    landscape = shared_landscape({"a": first, "b": first}, reference)
    assert landscape.explained[0] > 0.99
    # one scale: the coordinate is the amplitude along the unit direction (up to sign)
    coordinate = landscape.coordinates["a"][:, 0]
    r = np.corrcoef(coordinate, amplitude)[0, 1]
    assert abs(r) > 0.99
    # (superposition removes the direction's small rigid-body part, a few %)
    expected = np.abs(amplitude - amplitude.mean())
    np.testing.assert_allclose(np.abs(coordinate), expected, rtol=0.1, atol=0.05)

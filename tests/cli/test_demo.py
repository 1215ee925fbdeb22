"""`cryomotion demo`: the README's tour."""

import numpy as np

from cryomotion.cli.main import main


def test_small_demo_writes_everything_reports_and_repeats(tmp_path, capsys):
    args = ["--particles", "120", "--epochs", "1", "--workers", "0", "--no-progress"]
    assert main(["demo", "-o", str(tmp_path / "a"), *args]) == 0
    text = capsys.readouterr().out
    assert "rigid reference" in text and "test set" in text
    report = tmp_path / "a/run/analysis/report.html"
    assert f"Report: {report}" in text  # the demo ends with the analysis
    for path in ("data/particles.star", "data/ground_truth.npz", "run/latents.npz",
                 "run/config.yaml", "models.cif", "run/analysis/report.html"):  # fmt: skip
        assert (tmp_path / "a" / path).is_file(), path
    assert main(["demo", "-o", str(tmp_path / "a"), *args]) == 2  # never over a previous one
    assert main(["demo", "-o", str(tmp_path / "b"), *args]) == 0
    with np.load(tmp_path / "a/run/latents.npz") as a, np.load(tmp_path / "b/run/latents.npz") as b:
        assert np.array_equal(a["latents"], b["latents"])  # deterministic

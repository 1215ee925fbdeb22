"""`cryomotion demo`: the README's tour."""

import numpy as np
import pytest

from cryomotion.cli.main import main
from cryomotion.train.demo import DemoSettings, run_demo


def test_small_demo_writes_everything_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "-o", str(out), "--particles", "120", "--epochs", "1",
                 "--workers", "0", "--no-progress"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "rigid reference" in text and "test set" in text
    for path in ("data/particles.star", "data/ground_truth.npz", "run/latents.npz",
                 "run/config.yaml", "models.cif"):  # fmt: skip
        assert (out / path).is_file(), path


@pytest.mark.slow
def test_default_demo_beats_the_rigid_baseline(tmp_path):
    result = run_demo(tmp_path / "demo", DemoSettings(workers=0), progress=False)
    test = result.is_test
    assert np.median(result.rmsd[test]) < 0.7 * np.median(result.baseline[test])
    again = run_demo(tmp_path / "again", DemoSettings(workers=0, particles=200, epochs=1),
                     progress=False)  # fmt: skip
    repeat = run_demo(tmp_path / "repeat", DemoSettings(workers=0, particles=200, epochs=1),
                      progress=False)  # fmt: skip
    np.testing.assert_array_equal(again.rmsd, repeat.rmsd)  # deterministic

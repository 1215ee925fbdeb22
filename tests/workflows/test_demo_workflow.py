"""The demo workflow (``cryomotion.workflows.demo``) and its AdK morph (``simulate.adk``)."""

from pathlib import Path

import numpy as np
import pytest

from cryomotion.errors import InputError
from cryomotion.simulate.adk import adk_morph
from cryomotion.workflows.demo import DemoResult, DemoSettings, run_demo, summary


def test_adk_morph_runs_from_the_reference_to_the_closed_state():
    reference, frames = adk_morph(5)
    assert frames.shape == (5, reference.n_atoms, 3)
    np.testing.assert_allclose(frames[0], reference.coords, atol=1e-4)
    assert np.sqrt(np.mean(np.sum((frames[-1] - frames[0]) ** 2, -1))) > 3.0  # AdK closes


def test_summary_names_the_sets_times_and_outputs(tmp_path):
    result = DemoResult(
        output=tmp_path,
        rmsd=np.array([1.0, 2.0, 1.0]),
        baseline=np.array([2.0, 2.0, 3.0]),
        is_test=np.array([False, False, True]),
        seconds={"simulate": 1.0, "train": 61.0},
        files={"run": Path("run"), "report": Path("run/analysis/report.html")},
    )
    text = summary(result)
    assert "all particles" in text and "test set" in text
    assert "improved for 67 %" in text  # all particles: 2 of 3 beat the baseline
    assert "total 1 min 2 s" in text
    assert "Report: run/analysis/report.html" in text


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        run_demo(tmp_path, DemoSettings(particles=20), progress=False)


@pytest.mark.slow
def test_default_demo_beats_the_rigid_baseline(tmp_path):
    result = run_demo(tmp_path / "demo", DemoSettings(workers=0), progress=False)
    test = result.is_test
    assert np.median(result.rmsd[test]) < 0.7 * np.median(result.baseline[test])

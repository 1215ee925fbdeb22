"""`cryomotion export/analyze --polish-*`: a finished run's particles polished at inference
with its checkpoint, the run folder left as it is."""

import hashlib
import shutil

import numpy as np
import pytest
import yaml

from cryomotion.cli.main import main
from cryomotion.errors import InputError
from cryomotion.train.results import decode_latents, load_run
from cryomotion.train.run import polish_run

SEARCH = ["--polish-candidates", "8", "--polish-estimate", "mean", "--no-progress"]


@pytest.fixture(scope="module")
def finished(simulated, tmp_path_factory):
    """A finished one-epoch nma run (2 modes) on the shared 40 particles."""
    run = tmp_path_factory.mktemp("polish_inference") / "run"
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--modes", "2", "--workers", "0",
        "--no-progress",
    ]) == 0  # fmt: skip
    return run


def _digests(run):
    return {
        path.relative_to(run): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run.rglob("*"))
        if path.is_file()
    }


def test_export_polishes_like_train_resume_and_leaves_the_run(finished, tmp_path):
    """The exported models are those of the latents `train --resume` writes with the same
    polish, and not the run's own; the run's files keep every byte."""
    before = _digests(finished)
    own = np.load(finished / "latents.npz")["latents"]
    output = tmp_path / "models.npz"
    assert main(["export", str(finished), "-o", str(output), "--all", *SEARCH]) == 0
    assert _digests(finished) == before

    resumed = tmp_path / "resumed"
    shutil.copytree(finished, resumed)
    assert main(["train", "nma", "-o", str(resumed), "--resume", *SEARCH]) == 0
    polished = load_run(resumed)
    assert not np.allclose(polished.latents, own)
    expected = decode_latents(polished, polished.latents)
    coords = np.load(output)["coords"]
    np.testing.assert_allclose(coords, expected, atol=1e-4)


def test_analyze_keeps_the_polished_latents(finished, tmp_path):
    before = _digests(finished)
    out = tmp_path / "analysis"
    polish = ["--polish-steps", "5", "--polish-prior", "none", "--no-progress"]
    assert main(["analyze", str(finished), "-o", str(out), "--no-maps", "--states", "2",
                 *polish]) == 0  # fmt: skip
    assert _digests(finished) == before
    polished = np.load(out / "latents.npz")
    own = np.load(finished / "latents.npz")
    assert polished["latents"].shape == own["latents"].shape
    assert not np.allclose(polished["latents"], own["latents"])
    np.testing.assert_array_equal(polished["is_test"], own["is_test"])
    assert "polishing run" in (out / "latents.log").read_text()
    assert "Latents polished at inference" in (out / "report.html").read_text()
    # the PCA the analysis wrote is of the polished latents
    pca = np.load(out / "latent_pca.npz")
    centred = polished["latents"] - polished["latents"].mean(0)
    np.testing.assert_allclose(pca["mean"], polished["latents"].mean(0), atol=1e-5)
    assert np.abs(centred @ pca["components"][0]).max() > 0


def test_polish_flags_without_a_polish_are_refused(finished, tmp_path, capsys):
    output = str(tmp_path / "models.npz")
    assert main(["export", str(finished), "-o", output, "--polish-box", "32"]) == 2
    assert "--polish-box: expected --polish-steps N or --polish-candidates K" in (
        capsys.readouterr().err
    )
    assert main(["export", str(finished), "-o", output, "--prior-samples", "4",
                 "--polish-steps", "2"]) == 2  # fmt: skip
    assert "--prior-samples decodes the prior" in capsys.readouterr().err
    assert not (tmp_path / "models.npz").exists()


def test_an_unfinished_run_is_not_polished(finished, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished, unfinished)
    saved = yaml.safe_load((unfinished / "config.yaml").read_text())
    saved["config"]["training"]["epochs"] = 3
    (unfinished / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(InputError, match=r"epoch 1 of 3 \(the run has not finished"):
        polish_run(unfinished, {"model.polish_steps": 2}, tmp_path / "latents.npz")
    assert not (tmp_path / "latents.npz").exists()
    with pytest.raises(ValueError, match="training.epochs are not per-particle polish settings"):
        polish_run(finished, {"training.epochs": 2}, tmp_path / "latents.npz")

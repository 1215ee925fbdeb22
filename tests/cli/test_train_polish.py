"""`cryomotion train --resume --polish-steps N`: a finished run re-writes its latents with the
per-particle polish, without training further."""

import numpy as np
import pytest
import yaml

from cryomotion.cli.main import main
from cryomotion.train.checkpoint import load_checkpoint


def test_a_finished_run_is_polished_on_resume(simulated, tmp_path):
    run = tmp_path / "run"
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--modes", "2", "--workers", "0",
        "--no-progress",
    ]) == 0  # fmt: skip
    before = np.load(run / "latents.npz")["latents"]
    assert main(["train", "nma", "-o", str(run), "--resume", "--polish-steps", "5",
                 "--set", "model.polish_prior=none", "--no-progress"]) == 0  # fmt: skip
    after = np.load(run / "latents.npz")["latents"]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1  # no more training
    assert yaml.safe_load((run / "config.yaml").read_text())["config"]["model"]["polish_steps"] == 5
    assert after.shape == before.shape and not np.allclose(after, before)
    # then the posterior mean over population candidates, with no steps: each particle's
    # latents lie inside the candidates' hull, so within the range of the population's
    assert main(["train", "nma", "-o", str(run), "--resume", "--polish-steps", "0",
                 "--polish-candidates", "8", "--polish-estimate", "mean",
                 "--no-progress"]) == 0  # fmt: skip
    config = yaml.safe_load((run / "config.yaml").read_text())["config"]["model"]
    assert config["polish_estimate"] == "mean" and config["polish_candidates"] == 8
    mean = np.load(run / "latents.npz")["latents"]
    assert mean.shape == before.shape and not np.allclose(mean, before)
    assert np.all(mean >= before.min(0) - 1e-4) and np.all(mean <= before.max(0) + 1e-4)
    # whether there is motion is judged first on the held-out particles' encoder estimates
    assert "motion on the amortized estimates" in (run / "train.log").read_text()


def test_a_run_trained_on_crops_is_polished_at_the_stacks_box(simulated, tmp_path, capsys):
    """--polish-box: the posterior mean compares the models with the 32-px images of a run
    trained on 16-px crops; the same search at the training box gives other latents."""
    run = tmp_path / "run"
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--modes", "2", "--workers", "0",
        "--box", "16", "--no-progress",
    ]) == 0  # fmt: skip
    search = ["--polish-candidates", "8", "--polish-estimate", "mean", "--no-progress"]
    assert main(["train", "nma", "-o", str(run), "--resume", *search]) == 0
    at_training_box = np.load(run / "latents.npz")["latents"]
    assert main(["train", "nma", "-o", str(run), "--resume", *search, "--polish-box", "32"]) == 0
    at_full_box = np.load(run / "latents.npz")["latents"]
    log = (run / "train.log").read_text()
    assert "polish: models compared with the images at 32 px (3 Å/px; training 16 px)" in log
    assert at_full_box.shape == at_training_box.shape
    assert not np.allclose(at_full_box, at_training_box)
    config = yaml.safe_load((run / "config.yaml").read_text())["config"]["model"]
    assert config["polish_box"] == 32
    capsys.readouterr()
    assert main(["train", "nma", "-o", str(run), "--resume", *search, "--polish-box", "34"]) == 2
    assert "--polish-box 34: expected an even size of at most the stacks' 32 px" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "system", ["segments", "atomvae", "deephemnma", pytest.param("flex", marks=pytest.mark.slow)]
)
def test_every_system_with_a_decoder_is_polished_on_resume(system, simulated, tmp_path):
    """The posterior mean over candidates, then steps, on each system's own likelihood
    (AtomVAE's is the spectral Gaussian; DeepHEMNMA's aligned particles keep theirs)."""
    run = tmp_path / system
    assert main([
        "train", system, str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--workers", "0",
        "--no-progress",
    ]) == 0  # fmt: skip
    before = np.load(run / "latents.npz")["latents"]
    assert main(["train", system, "-o", str(run), "--resume", "--polish-steps", "2",
                 "--polish-candidates", "4", "--polish-estimate", "mean",
                 "--no-progress"]) == 0  # fmt: skip
    after = np.load(run / "latents.npz")
    assert after["latents"].shape == before.shape and np.isfinite(after["latents"]).all()
    moved = ~np.isclose(after["latents"], before).all(axis=1)
    if "aligned" in after.files:  # DeepHEMNMA: only the regressed particles are polished
        assert not moved[after["aligned"]].any()
        moved = moved[~after["aligned"]]
    assert moved.any()

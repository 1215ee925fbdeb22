"""`cryomotion train --polish-decoder N`: after training, EM iterations fit the decoder's
weights (and segments' segmentation) to the training images under each particle's
posterior over the candidates."""

import re

import numpy as np
import pytest
import torch

from cryomotion.cli.main import main
from cryomotion.train.checkpoint import load_checkpoint

SEARCH = ["--polish-candidates", "4", "--polish-estimate", "mean", "--no-progress"]


def _state(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")


def test_the_decoder_and_segmentation_alone_are_refitted_once(simulated, tmp_path):
    run = tmp_path / "segments"
    assert main([
        "train", "segments", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--workers", "0", "--no-progress",
    ]) == 0  # fmt: skip
    trained = _state(run)
    assert main(["train", "segments", "-o", str(run), "--resume", *SEARCH,
                 "--polish-decoder", "2"]) == 0  # fmt: skip
    refitted = _state(run)
    assert refitted["epoch"] == trained["epoch"] == 1
    assert refitted["progress"]["decoder_iterations"] == 2
    changed = {
        name
        for name, value in refitted["model"].items()
        if not torch.equal(value, trained["model"][name])
    }
    # the decoder's weights and the segmentation's posterior means (eval mode: no draw,
    # so the widths β get no gradient); the encoder, poses and intensity stay as trained
    segmentation = {f"deformation.{name}_nu" for name in ("mean", "width", "weight")}
    assert any(name.startswith("deformation.decoder.") for name in changed)
    assert changed & segmentation
    assert all(name.startswith("deformation.decoder.") or name in segmentation for name in changed)
    log = (run / "train.log").read_text()
    energies = [float(v) for v in re.findall(r"EM iteration \d/2, mean weighted energy (\S+)", log)]
    assert len(energies) == 2 and all(map(torch.isfinite, torch.tensor(energies)))
    # the iterations asked for are done: another resume leaves the decoder as it is
    assert main(["train", "segments", "-o", str(run), "--resume", *SEARCH,
                 "--polish-decoder", "2"]) == 0  # fmt: skip
    again = _state(run)
    assert all(torch.equal(again["model"][k], refitted["model"][k]) for k in refitted["model"])
    # a polish at inference of the refitted run: other polish settings, the decoder as it is
    output = tmp_path / "models.npz"
    assert main(["export", str(run), "-o", str(output), "--all", "--polish-steps", "2",
                 "--no-progress"]) == 0  # fmt: skip
    assert np.isfinite(np.load(output)["coords"]).all()


def test_a_decoder_polish_needs_a_decoder_and_a_posterior(simulated, tmp_path, capsys):
    particles, reference = str(simulated / "particles.star"), str(simulated / "reference.pdb")
    common = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--no-progress"]
    run = str(tmp_path / "segments")
    assert main(["train", "segments", particles, reference, "-o", run, *common,
                 "--polish-decoder", "1"]) == 2  # fmt: skip
    assert "expected --polish-candidates K (above 0) and --polish-estimate mean" in (
        capsys.readouterr().err
    )
    nma = str(tmp_path / "nma")
    assert main(["train", "nma", particles, reference, "-o", nma, *common, "--modes", "2",
                 *SEARCH, "--polish-decoder", "1"]) == 2  # fmt: skip
    assert "the nma deformation has no decoder to refine" in capsys.readouterr().err


def test_polish_run_refuses_to_refit_the_decoder(tmp_path):
    from cryomotion.train.run import polish_run

    (tmp_path / "config.yaml").write_text("")
    with pytest.raises(ValueError, match="not per-particle polish settings"):
        polish_run(tmp_path, {"model.polish_decoder_iterations": 2}, tmp_path / "l.npz")


def test_a_run_refining_poses_refits_its_decoder(simulated, tmp_path):
    """With a pose table, each batch's poses take their inner steps (gradients on) before
    the decoder's M-step."""
    run = tmp_path / "refine"
    assert main([
        "train", "segments", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--workers", "0",
        "--pose-mode", "refine", *SEARCH, "--polish-decoder", "1",
    ]) == 0  # fmt: skip
    assert _state(run)["progress"]["decoder_iterations"] == 1
    assert "EM iteration 1/1" in (run / "train.log").read_text()

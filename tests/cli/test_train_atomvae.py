"""`cryomotion train atomvae`: both stages end to end on a tiny simulation, poses inferred
from a particle file without angles, the inferred poses as a RELION file, the prior
ensemble, and the pose modes."""

import numpy as np
import pytest
import starfile
import yaml

from cryomotion.cli.main import main
from cryomotion.data.star import read_star
from cryomotion.errors import InputError

SMALL = [
    "--set", "deformation.trunk=64,32", "--set", "deformation.width=32",
    "--set", "deformation.blocks=2", "--set", "deformation.representation=32",
    "--conformation-samples", "2", "--pose-samples", "2",
    "--set", "deformation.stage1_pose_samples=4",
]  # fmt: skip


def train(particles, reference, run, *extra):
    return main([
        "train", "atomvae", str(particles), str(reference), "-o", str(run),
        "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--coarse",
        "--no-progress", *SMALL, *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def without_angles(simulated, tmp_path_factory):
    """The simulated particles' star file with its angles removed."""
    blocks = starfile.read(simulated / "particles.star", always_dict=True)
    blocks["particles"] = blocks["particles"].drop(
        columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    )
    path = simulated / "no_angles.star"
    starfile.write(blocks, path)
    return path


@pytest.fixture(scope="module")
def inferred(simulated, without_angles, tmp_path_factory):
    run = tmp_path_factory.mktemp("atomvae_run") / "run"
    assert train(without_angles, simulated / "reference.pdb", run, "--pose-mode", "infer") == 0
    return run


def test_both_stages_run_and_poses_are_written(inferred):
    config = yaml.safe_load((inferred / "config.yaml").read_text())["config"]
    assert config["system"] == "atomvae" and config["model"]["latent_dim"] == 32
    assert config["deformation"]["conformation_samples"] == 2
    metrics = (inferred / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3  # header + stage 1 ("poses") + stage 2 ("all")
    log = (inferred / "train.log").read_text()
    assert "phase 2/2: all" in log and "poses unknown" in log
    with np.load(inferred / "latents.npz") as latents:
        rotations = latents["rotations"]
        assert latents["latents"].shape == (40, 32) and np.isfinite(latents["latents"]).all()
        assert latents["log_var"].shape == (40, 32)
    assert rotations.shape == (40, 3, 3)
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1),
        np.broadcast_to(np.eye(3), rotations.shape),
        atol=1e-5,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-5)
    # the inferred poses in a RELION file, read back as they were written
    table = read_star(inferred / "refined_particles.star")
    np.testing.assert_allclose(table.rotations, rotations, atol=1e-4)


def test_prior_ensemble(inferred, tmp_path):
    output = tmp_path / "ensemble.npz"
    assert main(["export", str(inferred), "-o", str(output), "--prior-samples", "6"]) == 0
    with np.load(output) as data:
        assert data["coords"].shape[0] == 6 and data["latents"].shape == (6, 32)
        assert np.isfinite(data["coords"]).all()


def test_nma_has_no_prior(tmp_path):
    from cryomotion.train.results import prior_latents

    class Run:  # the check needs only the config's system
        class config:
            system = "nma"

    with pytest.raises(InputError, match="no latent prior"):
        prior_latents(Run, 4)


def test_file_without_angles_needs_inferred_poses(simulated, without_angles, tmp_path, capsys):
    with pytest.raises(InputError, match="--pose-mode infer"):
        read_star(without_angles)
    table = read_star(without_angles, require_angles=False)
    np.testing.assert_array_equal(table.rotations, np.broadcast_to(np.eye(3), (40, 3, 3)))
    assert main(["train", "nma", str(without_angles), str(simulated / "reference.pdb"),
                 "-o", str(tmp_path / "r"), "--epochs", "1", "--no-progress"]) == 2  # fmt: skip
    assert "missing column rlnAngleRot" in capsys.readouterr().err


def test_given_and_refine(simulated, tmp_path, capsys):
    reference = simulated / "reference.pdb"
    particles = simulated / "particles.star"
    # given poses: the pose stage has nothing to learn, so by default there is none
    assert train(particles, reference, tmp_path / "g1", "--pose-mode", "given",
                 "--pose-epochs", "1") == 2  # fmt: skip
    assert "leave out --pose-epochs" in capsys.readouterr().err
    assert train(particles, reference, tmp_path / "g2", "--pose-mode", "given") == 0
    saved = yaml.safe_load((tmp_path / "g2" / "config.yaml").read_text())["config"]
    assert saved["deformation"]["pose_epochs"] == 0
    truth = read_star(particles).rotations
    with np.load(tmp_path / "g2" / "latents.npz") as latents:
        np.testing.assert_allclose(latents["rotations"], truth, atol=1e-5)
    # refine: the pose latent corrects around the file's poses, which it starts from
    assert (
        train(
            particles,
            reference,
            tmp_path / "r",
            "--pose-mode",
            "refine",
            "--epochs",
            "1",
            "--pose-epochs",
            "0",
        )
        == 0
    )
    with np.load(tmp_path / "r" / "latents.npz") as latents:
        angles = np.degrees(
            np.arccos(
                np.clip((np.einsum("nij,nij->n", latents["rotations"], truth) - 1) / 2, -1, 1)
            )
        )
    assert np.median(angles) < 10.0
    assert (tmp_path / "r" / "refined_particles.star").is_file()

"""`cryomotion train nma`: the run folder, refusing other runs, resuming, config files."""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from cryomotion import __version__
from cryomotion.cli.main import main
from cryomotion.cli.train import add_arguments, build_config
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.config import config_differences


def train(sim, run, *extra):
    return main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(run),
        "--modes", "2", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--no-progress", *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def trained(simulated, tmp_path_factory):
    run = tmp_path_factory.mktemp("train_cli_run") / "run"
    assert train(simulated, run, "--workers", "1", "--box", "24") == 0
    return run


def test_run_folder_contents(trained, simulated):
    names = {p.name for p in trained.iterdir()}
    assert {"config.yaml", "reference.pdb", "modes.npz", "checkpoints", "metrics.csv",
            "train.log", "latents.npz"} <= names  # fmt: skip
    record = yaml.safe_load((trained / "config.yaml").read_text())
    assert record["cryomotion_version"] == __version__
    assert record["command_line"].startswith("cryomotion")
    config = record["config"]
    assert config["model"]["latent_dim"] == 2 and config["data"]["box"] == 24
    assert config["data"]["particles"] == str((simulated / "particles.star").resolve())
    with np.load(trained / "latents.npz") as latents:
        assert latents["latents"].shape == (40, 2)
        assert latents["rotations"].shape == (40, 3, 3)
        assert latents["shifts"].shape == (40, 2)
        assert np.array_equal(latents["particle_index"], np.arange(40))
        assert latents["is_test"].dtype == bool and latents["is_test"].sum() == 4
    assert load_checkpoint(trained / "checkpoints" / "last.pt")["epoch"] == 1
    assert "epoch 1/1" in (trained / "train.log").read_text()
    assert (trained / "metrics.csv").read_text().startswith("epoch,train_loss,test_loss")


def test_refuses_to_overwrite_and_resumes(simulated, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(simulated, run, "--workers", "0") == 0
    assert train(simulated, run, "--workers", "0") == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert train(simulated, run, "--resume", "--modes", "3") == 2
    assert "model.latent_dim" in capsys.readouterr().err
    # only the folder is needed to resume; more epochs train on
    assert main(["train", "nma", "-o", str(run), "--resume", "--epochs", "2",
                 "--no-progress"]) == 0  # fmt: skip
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2"]


def test_refuses_a_foreign_folder_and_bad_settings(simulated, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert train(simulated, foreign) == 2
    assert "holds no training run" in capsys.readouterr().err
    missing = tmp_path / "never"
    assert main(["train", "nma", str(tmp_path / "none.star"), str(simulated / "reference.pdb"),
                 "-o", str(missing)]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err
    assert not missing.exists()  # bad inputs fail before the run folder is written
    settings = tmp_path / "settings.yaml"
    settings.write_text("training:\n  epochz: 3\n")
    assert train(simulated, tmp_path / "x", "--config", str(settings)) == 2
    assert "unknown setting training.epochz" in capsys.readouterr().err


def test_config_file_settings_are_used_and_flags_override(simulated, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("model:\n  width: 0.125\n  latent_dim: 5\ntraining:\n  lr: 0.0005\n")
    run = tmp_path / "run"
    assert train(simulated, run, "--config", str(settings), "--workers", "0") == 0
    config = yaml.safe_load((run / "config.yaml").read_text())["config"]
    assert config["model"]["width"] == 0.125
    assert config["training"]["lr"] == 0.0005
    assert config["model"]["latent_dim"] == 2  # --modes overrides the file


def test_torchrun_two_processes(simulated, tmp_path):
    """The same command under torchrun: rank 0 writes one complete run folder."""
    run = tmp_path / "ddp"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "cryomotion.cli.main", "train", "nma", str(simulated / "particles.star"),
         str(simulated / "reference.pdb"), "-o", str(run), "--modes", "2", "--epochs", "1",
         "--batch-size", "8", "--device", "cpu", "--workers", "0", "--norm", "group",
         "--no-progress"],
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("run folder:") == 1
    with np.load(run / "latents.npz") as latents:
        assert np.array_equal(latents["particle_index"], np.arange(40))
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1


def _config_of(tmp_path, *extra):
    """The config ``cryomotion train nma ... *extra`` would run with (nothing is trained)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["nma", "p.star", "ref.pdb", "-o", str(tmp_path / "run"), *extra])
    return build_config(args)


def test_set_overrides_the_config_file_and_flags_override_set(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("training:\n  lr: 0.0005\n  epochs: 4\ndata:\n  box: 64\n")
    config = _config_of(tmp_path, "--config", str(settings), "--set", "training.lr=3e-4",
                        "--set", "data.box=none", "--set", "deformation.cutoff=12",
                        "--set", "training.epochs=9", "--epochs", "2")  # fmt: skip
    assert config.training.lr == 3e-4  # --set over --config
    assert config.data.box is None  # --set can clear an optional setting
    assert config.deformation.cutoff == 12.0
    assert config.training.epochs == 2  # the specific flag over --set


def test_preload_flag_sets_a_setting_a_resumed_run_may_change(tmp_path):
    plain, preloaded = _config_of(tmp_path), _config_of(tmp_path, "--preload")
    assert not plain.data.preload and preloaded.data.preload
    assert config_differences(plain, preloaded) == []  # where images come from, not what


def test_set_errors_are_one_line_before_any_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    for assignment, message in (
        ("training.lr=fast", "--set training.lr=fast: 'fast' is not a number"),
        ("training.speed=2", "unknown setting training.speed"),
        ("deformation.segments=4", "unknown setting deformation.segments"),
    ):
        assert main(["train", "nma", "p.star", "ref.pdb", "-o", str(run),
                     "--set", assignment]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err
    assert not run.exists()


def test_pose_mode_refine_writes_refined_poses_for_relion(simulated, tmp_path):
    from cryomotion.data import read_particles

    run = tmp_path / "refine"
    assert train(simulated, run, "--pose-mode", "refine") == 0
    given = read_particles(simulated / "particles.star")
    refined = read_particles(run / "refined_particles.star")  # read back from where it is
    assert len(refined) == len(given)
    assert np.array_equal(refined.image_indices, given.image_indices)
    assert np.array_equal(refined.image_files, given.image_files)
    with np.load(run / "latents.npz") as latents:
        np.testing.assert_allclose(refined.rotations, latents["rotations"], atol=1e-5)
        np.testing.assert_allclose(refined.shifts, latents["shifts"], atol=1e-4)
        moved = np.abs(latents["rotations"] - given.rotations).max(axis=(1, 2))
    assert (moved > 1e-5).all()  # every particle's pose was refined, test ones included
    np.testing.assert_allclose(refined.ctf, given.ctf)  # the rest of the star is kept
    with np.load(run / "latents.npz") as latents:
        assert "log_var" not in latents.files


def test_given_poses_are_written_with_the_encoders_rotation_correction(trained, simulated):
    from cryomotion.data import read_particles

    given = read_particles(simulated / "particles.star")
    with np.load(trained / "latents.npz") as latents:
        relative = np.einsum("nji,njk->nik", given.rotations, latents["rotations"])
    # nma's encoder corrects the given rotation (``deformation.rotation_unit``): a rotation
    cosine = np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1, 1)
    assert np.degrees(np.arccos(cosine)).max() < 30
    np.testing.assert_allclose(np.linalg.det(relative), 1.0, atol=1e-5)
    assert not (trained / "refined_particles.star").exists()


def test_given_poses_are_written_unchanged_without_the_correction(simulated, tmp_path):
    from cryomotion.data import read_particles

    run = tmp_path / "run"
    assert train(simulated, run, "--box", "24", "--set", "deformation.rotation_unit=0") == 0
    given = read_particles(simulated / "particles.star")
    with np.load(run / "latents.npz") as latents:
        np.testing.assert_allclose(latents["rotations"], given.rotations, atol=1e-6)


def test_system_flags_belong_to_their_system(simulated, tmp_path, capsys):
    assert train(simulated, tmp_path / "x", "--segments", "3") == 2
    assert "--segments is for the segments system, not nma" in capsys.readouterr().err
    assert train(simulated, tmp_path / "y", "--latent-dim", "3") == 2  # disagrees with --modes 2
    assert "--modes 2 and --latent-dim 3 disagree" in capsys.readouterr().err


def test_coarse_run_trains_on_one_bead_per_residue(simulated, tmp_path):
    run = tmp_path / "run"
    assert train(simulated, run, "--coarse") == 0
    config = yaml.safe_load((run / "config.yaml").read_text())["config"]
    assert config["model"]["coarse"] is True
    log = (run / "train.log").read_text()
    # AdK (4AKE chain A): 214 residues, one bead each, instead of its 1,656 atoms
    assert "renderer: 214 scatterers (one Gaussian bead of std 2 Å per residue" in log
    assert "epoch 1/1" in log
    with np.load(run / "latents.npz") as latents:
        assert np.isfinite(latents["latents"]).all()

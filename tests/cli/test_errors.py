"""Errors reach the user as one line: bad flags, unexpected exceptions, failed runs."""

import pytest

import cryomotion.cli.nma as nma_verb
import cryomotion.train.run as run_module
from cryomotion.cli.main import main
from cryomotion.errors import InputError


def _train(sim, run, *extra):
    return main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(run),
        "--modes", "2", "--epochs", "1", "--batch-size", "8", "--box", "24", "--device", "cpu",
        "--workers", "0", "--no-progress", *extra,
    ])  # fmt: skip


@pytest.mark.parametrize(
    "argv, flag, expected",
    [
        (["train", "nma", "-o", "r", "--seed", "-1"], "--seed", ">= 0"),
        (["train", "segments", "-o", "r", "--segments", "0"], "--segments", ">= 1"),
        (["train", "nma", "-o", "r", "--test-fraction", "1"], "--test-fraction", "< 1"),
        (["train", "nma", "-o", "r", "--lr", "nan"], "--lr", "> 0"),
        (["analyze", "run", "--states", "0"], "--states", ">= 1"),
        (
            ["simulate", "--trajectory", "t.pdb", "-o", "d", "--particles", "0"],
            "--particles",
            ">= 1",
        ),
        (["simulate", "--trajectory", "t.pdb", "-o", "d", "--box", "-64"], "--box", ">= 8"),
        (["simulate", "--trajectory", "t.pdb", "-o", "d", "--voltage", "-300"], "--voltage", "> 0"),
        (["simulate", "--trajectory", "t.pdb", "-o", "d", "--frames", "0"], "--frames", ">= 2"),
        (["nma", "m.pdb", "--cutoff", "0"], "--cutoff", "> 0"),
        (["project", "m.pdb", "p.star", "-o", "x.mrcs", "--batch-size", "0"], "--batch-size", ""),
        (["demo", "--particles", "-5"], "--particles", ">= 20"),
    ],
)
def test_out_of_range_flags_are_one_line_errors(argv, flag, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"argument {flag}" in err and expected in err


def test_unexpected_errors_print_one_line_and_log_the_traceback(
    adk_open_path, tmp_path, monkeypatch, capsys
):
    def broken(*args, **kwargs):
        raise RuntimeError("eigensolver\nexploded")

    monkeypatch.setattr(nma_verb, "compute_normal_modes", broken)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRYOMOTION_DEBUG", raising=False)
    argv = ["nma", str(adk_open_path), "-o", str(tmp_path / "m.npz")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    log = tmp_path / "cryomotion-error.log"
    assert err == f"cryomotion nma: error: RuntimeError: eigensolver exploded (details in {log})\n"
    text = log.read_text()
    assert "Traceback" in text and "in broken" in text and "cryomotion nma" in text
    monkeypatch.setenv("CRYOMOTION_DEBUG", "1")
    with pytest.raises(RuntimeError, match="exploded"):
        main(argv)


def test_resume_of_no_run_says_so(tmp_path, capsys):
    assert main(["train", "nma", "-o", str(tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--resume" in err and "particle" not in err
    assert main(["train", "nma", "-o", str(tmp_path), "--resume"]) == 2
    assert "holds no training run (no config.yaml)" in capsys.readouterr().err


def test_a_failed_start_leaves_nothing_and_the_retry_runs(simulated, tmp_path, monkeypatch, capsys):
    def refused(self, resume=False):
        raise InputError("refused after the folder was written")

    run = tmp_path / "deep" / "run"
    monkeypatch.setattr(run_module.Trainer, "fit", refused)
    monkeypatch.chdir(tmp_path)
    assert _train(simulated, run) == 2
    assert "refused after" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()  # the folders this call created are gone
    existing = tmp_path / "mine"
    existing.mkdir()
    assert _train(simulated, existing) == 2
    assert existing.is_dir() and not any(existing.iterdir())  # kept, as it was

    def crashed(self, resume=False):
        raise RuntimeError("crash before the first checkpoint")

    monkeypatch.setattr(run_module.Trainer, "fit", crashed)
    assert _train(simulated, run) == 1
    assert f"details in {tmp_path / 'cryomotion-error.log'}" in capsys.readouterr().err
    assert not run.exists()
    monkeypatch.undo()
    assert _train(simulated, run) == 0  # the retry into the same -o


def test_a_crash_after_a_checkpoint_keeps_the_run(simulated, tmp_path, monkeypatch, capsys):
    def crashed(*args, **kwargs):
        raise RuntimeError("crash after the checkpoint")

    monkeypatch.setattr(run_module, "write_latents", crashed)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert _train(simulated, run) == 1
    assert f"details in {run / 'train.log'}" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()
    assert "crash after the checkpoint" in (run / "train.log").read_text()
    monkeypatch.undo()
    assert main(["train", "nma", "-o", str(run), "--resume", "--no-progress"]) == 0


def test_reference_errors_name_the_users_model(simulated, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(simulated, run) == 0
    (run / "reference.pdb").write_text("HETATM    1  O   HOH A   1       1.0   2.0   3.0\n")
    assert main(["train", "nma", "-o", str(run), "--resume", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert str((simulated / "reference.pdb").resolve()) in err
    assert "copied into the run as reference.pdb" in err


def test_out_of_range_settings_in_a_config_file(simulated, tmp_path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text("training:\n  seed: -1\n")
    assert _train(simulated, tmp_path / "run", "--config", str(settings)) == 2
    assert "--seed -1: expected an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

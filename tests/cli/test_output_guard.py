"""Nothing a user gave is overwritten: every verb refuses such an output unless --force."""

import os
import shutil
import stat

import mrcfile
import numpy as np
import pytest

import cryomotion.simulate.dataset as dataset_module
from cryomotion.cli.main import main
from cryomotion.data.readers import read_particles
from cryomotion.simulate.dataset import DATASET_FILES


@pytest.fixture(scope="module")
def run(simulated, tmp_path_factory):
    """A one-epoch nma run on the shared simulated dataset."""
    run = tmp_path_factory.mktemp("guard_run") / "run"
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(run), "--modes", "2", "--epochs", "1", "--batch-size", "8", "--box", "24",
        "--device", "cpu", "--workers", "0", "--no-progress",
    ]) == 0  # fmt: skip
    return run


def _refused(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for word in ("--force", *words):
        assert word in err, err


def _simulate(adk_open_path, adk_closed_path, output, *extra):
    return main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "3",
        "--particles", "8", "--box", "16", "--pixel-size", "6", "--snr", "1", "--no-progress",
        "-o", str(output), *extra,
    ])  # fmt: skip


def test_simulate_refuses_an_existing_dataset_and_its_inputs(
    simulated, adk_open_path, adk_closed_path, tmp_path, capsys
):
    before = (simulated / "particles.star").read_bytes()
    assert _simulate(adk_open_path, adk_closed_path, simulated) == 2
    _refused(capsys, "simulated dataset")
    assert (simulated / "particles.star").read_bytes() == before
    # an input inside the output folder: the reference it would write over
    data = tmp_path / "data"
    data.mkdir()
    model = shutil.copy(adk_open_path, data / "reference.pdb")
    assert _simulate(model, adk_closed_path, data) == 2
    _refused(capsys, "is the input")
    # a folder with a stack but no dataset marks: still refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "particles.mrcs").write_bytes(b"mine")
    assert _simulate(adk_open_path, adk_closed_path, tmp_path / "other") == 2
    _refused(capsys, "particles.mrcs")
    assert (tmp_path / "other" / "particles.mrcs").read_bytes() == b"mine"


def test_simulate_force_removes_the_old_dataset_first(
    simulated, adk_open_path, adk_closed_path, tmp_path, monkeypatch
):
    data = shutil.copytree(simulated, tmp_path / "data")

    class Killed(dataset_module.StackWriter):
        def write(self, start, images):
            raise KeyboardInterrupt

    monkeypatch.setattr(dataset_module, "StackWriter", Killed)
    assert _simulate(adk_open_path, adk_closed_path, data, "--force") == 130
    # killed while writing the new stack: no old star, truth or stack is left beside it
    assert not any((data / name).exists() for name in DATASET_FILES)
    monkeypatch.undo()
    assert _simulate(adk_open_path, adk_closed_path, data, "--force") == 0
    assert len(read_particles(data / "particles.star")) == 8


def test_project_refuses_the_input_stack(simulated, tmp_path, capsys):
    stack = read_particles(simulated / "particles.star").image_files[0]
    before = mrcfile.read(stack).copy()
    model, star = str(simulated / "reference.pdb"), str(simulated / "particles.star")
    assert main(["project", model, star, "-o", str(stack), "--device", "cpu"]) == 2
    _refused(capsys, "is the input")
    np.testing.assert_array_equal(mrcfile.read(stack), before)
    assert main(["project", model, star, "-o", model, "--device", "cpu"]) == 2
    _refused(capsys, "is the input")
    assert main(["project", model, star, "-o", str(simulated / "p.mrcs"), "--device", "cpu"]) == 2
    _refused(capsys, "inside the existing simulated dataset")
    out = tmp_path / "p.mrcs"
    assert (
        main(["project", model, star, "-o", str(out), "--device", "cpu", "--indices", "0-1"]) == 0
    )


def test_nma_refuses_the_model_and_a_run_folder(adk_open_path, run, tmp_path, capsys):
    model = shutil.copy(adk_open_path, tmp_path / "model.pdb")
    before = model.read_bytes()
    assert main(["nma", str(model), "-o", str(model), "-n", "2"]) == 2
    _refused(capsys, "is the input")
    assert model.read_bytes() == before
    modes = (run / "modes.npz").read_bytes()
    assert main(["nma", str(model), "-o", str(run / "modes.npz"), "-n", "2"]) == 2
    _refused(capsys, "inside the existing training run")
    assert (run / "modes.npz").read_bytes() == modes
    movie = shutil.copy(adk_open_path, tmp_path / "mode_01.pdb")
    argv = ["nma", str(movie), "-o", str(tmp_path / "m.npz"), "-n", "2", "--frames", "2"]
    assert main([*argv, "--animate", str(tmp_path)]) == 2
    _refused(capsys, "--animate", "is the input")
    assert main([*argv, "--animate", str(tmp_path), "--force"]) == 0


def test_export_refuses_the_runs_reference(run, tmp_path, capsys):
    reference = run / "reference.pdb"
    before = reference.read_bytes()
    assert main(["export", str(run), "-o", str(reference)]) == 2
    _refused(capsys, "reference.pdb")
    assert reference.read_bytes() == before
    assert main(["export", str(run), "-o", str(run / "models.cif")]) == 2
    _refused(capsys, "inside the existing training run")
    assert main(["export", str(run), "-o", str(run / "models.cif"), "--force"]) == 0


def test_analyze_refuses_the_run_itself_and_other_folders(run, simulated, capsys):
    assert main(["analyze", str(run), "-o", str(run), "--states", "2"]) == 2
    _refused(capsys, "is the existing training run")
    assert main(["analyze", str(run), "-o", str(simulated / "analysis"), "--states", "2"]) == 2
    _refused(capsys, "inside the existing simulated dataset")
    assert not (simulated / "analysis").exists()


def test_train_refuses_a_run_inside_a_dataset(simulated, capsys):
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(simulated / "run"), "--epochs", "1",
    ]) == 2  # fmt: skip
    _refused(capsys, "inside the existing simulated dataset")
    assert not (simulated / "run").exists()
    assert main([
        "train", "nma", str(simulated / "particles.star"), str(simulated / "reference.pdb"),
        "-o", str(simulated / "particles.star"), "--epochs", "1",
    ]) == 2  # fmt: skip
    _refused(capsys, "is the input")


def test_demo_refuses_a_dataset_folder(simulated, capsys):
    assert main(["demo", "-o", str(simulated / "demo"), "--particles", "20"]) == 2
    _refused(capsys, "inside the existing simulated dataset")
    assert not (simulated / "demo").exists()


def test_run_files_are_readable_as_the_umask_allows(run):
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("config.yaml", "reference.pdb", "modes.npz", "latents.npz", "metrics.csv",
                 "checkpoints/last.pt"):  # fmt: skip
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name

"""`load_run` / `export_models` on tiny real runs: what a run folder must hold, and a
deformation with learned parameters is never rebuilt from its initial values."""

import shutil

import numpy as np
import pytest
import torch

from cryomotion.cli.main import main
from cryomotion.errors import InputError
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.results import export_models, load_run, particle_coords


@pytest.fixture(scope="module")
def simulated(simulate_with_cli, adk_closed_path):
    return simulate_with_cli("results", adk_closed_path, 3, 16, 24, 4.0)


def _train(sim, run, system, *extra):
    assert main([
        "train", system, str(sim / "particles.star"), str(sim / "reference.pdb"),
        "-o", str(run), "--epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--workers", "0", "--no-progress", *extra,
    ]) == 0  # fmt: skip
    return run


@pytest.fixture(scope="module")
def nma_run(simulated, tmp_path_factory):
    return _train(simulated, tmp_path_factory.mktemp("results_nma") / "run", "nma", "--modes", "2")


@pytest.fixture(scope="module")
def segments_run(simulated, tmp_path_factory):
    run = tmp_path_factory.mktemp("results_segments") / "run"
    return _train(simulated, run, "segments", "--segments", "2")


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_segments_run_without_checkpoint_is_refused(segments_run, tmp_path, capsys):
    run = _copy(segments_run, tmp_path)
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(InputError, match=r"last\.pt: missing; it holds the segments .*learned"):
        load_run(run)
    assert main(["export", str(run), "-o", str(tmp_path / "m.npz"), "--all"]) == 2
    err = capsys.readouterr().err
    assert "last.pt" in err and "learned parameters" in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()
    assert main(["analyze", str(run), "-o", str(tmp_path / "a"), "--no-maps"]) == 2
    assert "last.pt" in capsys.readouterr().err


def test_segments_run_with_checkpoint_uses_the_learned_parameters(segments_run):
    run = load_run(segments_run)
    saved = load_checkpoint(segments_run / "checkpoints" / "last.pt")["model"]
    learned = dict(run.deformation.named_parameters())
    assert learned
    for name, value in learned.items():
        torch.testing.assert_close(value.detach(), saved[f"deformation.{name}"], rtol=0, atol=0)
    assert particle_coords(run, np.arange(2)).shape == (2, run.reference.n_atoms, 3)


def test_nma_run_without_checkpoint_gives_the_same_models(nma_run, tmp_path):
    expected = particle_coords(load_run(nma_run), np.arange(16))
    run = _copy(nma_run, tmp_path)
    shutil.rmtree(run / "checkpoints")
    loaded = load_run(run)
    np.testing.assert_array_equal(particle_coords(loaded, np.arange(16)), expected)
    out = export_models(loaded, tmp_path / "m.npz")
    with np.load(out) as data:
        np.testing.assert_array_equal(data["coords"], expected)


def test_object_arrays_in_latents_are_one_line_errors(nma_run, tmp_path, capsys):
    run = _copy(nma_run, tmp_path)
    with np.load(run / "latents.npz") as data:
        arrays = dict(data)
    arrays["shifts"] = arrays["shifts"].astype(object)
    np.savez(run / "latents.npz", **arrays)
    with pytest.raises(InputError, match=r"latents\.npz: array 'shifts' holds Python objects"):
        load_run(run)
    assert main(["export", str(run), "-o", str(tmp_path / "m.npz"), "--all"]) == 2
    err = capsys.readouterr().err.strip()
    assert "latents.npz" in err and "'shifts'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("is_test"), r"missing array is_test"),
        (lambda a: a.update(latents=a["latents"][:, :1]), "1 columns"),
        (lambda a: a.update(particle_index=a["particle_index"][:-1]), "'particle_index' has 15"),
        (lambda a: a.update(particle_index=a["particle_index"] - 1), "particle_index holds -1"),
    ],
)
def test_malformed_latents_are_input_errors(nma_run, tmp_path, change, message):
    run = _copy(nma_run, tmp_path)
    with np.load(run / "latents.npz") as data:
        arrays = dict(data)
    change(arrays)
    np.savez(run / "latents.npz", **arrays)
    with pytest.raises(InputError, match=message):
        load_run(run)


def test_object_arrays_in_modes_are_input_errors(nma_run, tmp_path):
    run = _copy(nma_run, tmp_path)
    with np.load(run / "modes.npz") as data:
        arrays = dict(data)
    arrays["vectors"] = arrays["vectors"].astype(object)
    np.savez(run / "modes.npz", **arrays)
    with pytest.raises(InputError, match=r"modes\.npz: array 'vectors' holds Python objects"):
        load_run(run)


def test_a_run_of_cryomotion_0_1_reads_its_latents_under_the_old_key(tmp_path, nma_run):
    """Runs written before the fixed keys: nma's latents as "amplitudes", no rotations."""
    import shutil

    from cryomotion.train.results import load_run

    old = tmp_path / "old"
    shutil.copytree(nma_run, old)
    with np.load(old / "latents.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["amplitudes"] = arrays.pop("latents")
    del arrays["rotations"]
    np.savez(old / "latents.npz", **arrays)
    run = load_run(old)
    np.testing.assert_array_equal(run.latents, arrays["amplitudes"])
    assert run.rotations is None
    assert load_run(nma_run).rotations.shape == (len(run.latents), 3, 3)


def test_the_motion_scale_is_written_and_every_model_decoded_with_it(nma_run, tmp_path):
    """latents.npz holds the held-out choice of α; decoded models are x_ref + α (x − x_ref);
    a latents file without it (runs before it) reads as α = 1."""
    with np.load(nma_run / "latents.npz") as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["motion_scale"].shape == () and 0 <= arrays["motion_scale"] <= 1
    run = _copy(nma_run, tmp_path)
    arrays["motion_scale"] = np.float64(1.0)
    np.savez(run / "latents.npz", **arrays)
    full = particle_coords(load_run(run), np.arange(4))
    arrays["motion_scale"] = np.float64(0.25)
    np.savez(run / "latents.npz", **arrays)
    loaded = load_run(run)
    reference = loaded.reference.coords
    expected = reference + 0.25 * (full - reference)
    np.testing.assert_allclose(particle_coords(loaded, np.arange(4)), expected, atol=1e-4)
    del arrays["motion_scale"]
    np.savez(run / "latents.npz", **arrays)
    assert load_run(run).motion_scale == 1.0
    arrays["motion_scale"] = np.float64(1.5)
    np.savez(run / "latents.npz", **arrays)
    with pytest.raises(InputError, match="motion_scale 1.5"):
        load_run(run)

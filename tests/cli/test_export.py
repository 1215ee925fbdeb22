"""`cryomotion export`: per-particle models in the reference's atom order."""

import numpy as np
import pytest

from cryomotion.cli.main import main
from cryomotion.dynamics.modes import NormalModes
from cryomotion.structure.io import read_model, read_trajectory


@pytest.fixture(scope="module")
def run(tmp_path_factory, adk_open_path, adk_closed_path):
    root = tmp_path_factory.mktemp("export")
    sim, run = root / "sim", root / "run"
    assert main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "4",
        "--particles", "24", "--box", "32", "--pixel-size", "3.0", "--snr", "1",
        "--seed", "1", "--no-progress", "-o", str(sim),
    ]) == 0  # fmt: skip
    assert main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(run),
        "--modes", "3", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--workers", "0", "--no-progress", "--set", "model.motion_scales=[1.0]",
    ]) == 0  # fmt: skip  (the models as learned: 2 held-out images cannot show the motion)
    return run


def test_npz_all_particles(run, tmp_path):
    out = tmp_path / "models.npz"
    assert main(["export", str(run), "-o", str(out), "--all"]) == 0
    reference = read_model(run / "reference.pdb")
    modes = NormalModes.load(run / "modes.npz")
    with np.load(run / "latents.npz") as latents:
        amplitudes, scale = latents["latents"], float(latents["motion_scale"])
    assert scale == 1.0
    with np.load(out) as exported:
        coords, indices = exported["coords"], exported["indices"]
    assert coords.shape == (24, reference.n_atoms, 3) and coords.dtype == np.float32
    assert np.array_equal(indices, np.arange(24))
    # atoms in the reference's order: the deformed models are X0 + α U z atom by atom (α the
    # run's motion scale, train.motion_scale)
    np.testing.assert_allclose(coords, modes.conformations(scale * amplitudes), atol=2e-3)
    assert np.abs(coords - reference.coords).max() < 20.0


def test_multimodel_cif_with_indices_and_default(run, tmp_path, capsys):
    out = tmp_path / "models.cif"
    assert main(["export", str(run), "-o", str(out), "--indices", "3-5,0"]) == 0
    frames = read_trajectory(out, read_model(run / "reference.pdb"))
    assert frames.shape[0] == 4
    npz = tmp_path / "picked.npz"
    assert main(["export", str(run), "-o", str(npz), "--indices", "3-5,0"]) == 0
    with np.load(npz) as exported:
        assert np.array_equal(exported["indices"], [3, 4, 5, 0])
        np.testing.assert_allclose(frames, exported["coords"], atol=2e-3)
    default = tmp_path / "first.pdb"
    assert main(["export", str(run), "-o", str(default)]) == 0
    assert "wrote 24 particle models" in capsys.readouterr().out  # default: first 100
    assert main(["export", str(run), "-o", str(tmp_path / "x.xyz")]) == 2
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "y.npz")]) == 2

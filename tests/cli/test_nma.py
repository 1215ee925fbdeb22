"""The `cryomotion nma` verb, run in-process from argument parsing to files."""

import numpy as np
import pytest

from cryomotion.cli.main import main
from cryomotion.dynamics.modes import NormalModes
from cryomotion.structure.io import read_model, read_trajectory


def test_modes_comparison_and_animations(adk_open_path, adk_closed_path, tmp_path, capsys):
    output, movies = tmp_path / "modes.npz", tmp_path / "movies"
    argv = ["nma", str(adk_open_path), "-o", str(output), "--compare", str(adk_closed_path)]
    argv += ["--animate", str(movies), *"-n 16 --frames 6".split()]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "214 'ca' nodes" in printed and "6 rigid-body modes set apart" in printed
    rows = [line.split() for line in printed.splitlines() if line.split()[:1] == ["16"]]
    # mode, eigenvalue, collectivity, overlap and cumulative overlap (nodes, then atoms)
    assert float(rows[0][4]) == pytest.approx(0.967, abs=0.005)
    assert float(rows[0][6]) > 0.93

    modes = NormalModes.load(output)
    model = read_model(adk_open_path)
    assert modes.vectors.shape == (16, model.n_atoms, 3)
    np.testing.assert_array_equal(modes.coords, model.coords)

    animations = sorted(movies.iterdir())
    assert [path.name for path in animations[:2]] == ["mode_01.pdb", "mode_02.pdb"]
    assert len(animations) == 16
    sweep = read_trajectory(animations[0], reference=model)
    assert sweep.shape == (6, model.n_atoms, 3)
    rms = np.sqrt(np.mean(np.sum((sweep - model.coords) ** 2, axis=2), axis=1))
    assert rms.max() == pytest.approx(2.0 * np.sin(2 * np.pi / 6 * 1), abs=0.01)
    assert rms[0] == pytest.approx(0.0, abs=1e-3)


def test_hydrogens_and_centroid_nodes(adk_open_path, tmp_path, capsys):
    output = tmp_path / "modes.npz"
    argv = ["nma", str(adk_open_path), "-o", str(output)]
    argv += "-n 3 --nodes centroid --hydrogens --cutoff 12 --gamma 2 --mass-weighted".split()
    assert main(argv) == 0
    modes = NormalModes.load(output)
    assert modes.vectors.shape == (3, 3341, 3)
    assert (modes.nodes, modes.cutoff, modes.gamma) == ("centroid", 12.0, 2.0)
    assert modes.mass_weighted
    assert "3341 atoms" in capsys.readouterr().out


def test_heavy_atom_network_of_a_small_peptide(gramicidin_path, tmp_path, capsys):
    output = tmp_path / "modes.npz"
    argv = [
        "nma",
        str(gramicidin_path),
        "-o",
        str(output),
        *"-n 2 --nodes heavy --cutoff 8".split(),
    ]
    assert main(argv) == 0
    assert NormalModes.load(output).n_nodes == 272


def test_comparison_with_other_atoms_is_an_error(adk_open_path, gramicidin_path, tmp_path, capsys):
    argv = ["nma", str(adk_open_path), "-o", str(tmp_path / "m.npz")]
    argv += ["--compare", str(gramicidin_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "expected the same atoms in the same order" in error
    assert not (tmp_path / "m.npz").exists()


def test_disconnected_network_is_reported(gramicidin_path, tmp_path, capsys):
    argv = ["nma", str(gramicidin_path), "-o", str(tmp_path / "m.npz"), "--cutoff", "3"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "disconnected" in error and "cutoff 3 Å" in error
    assert len(error.strip().splitlines()) == 1

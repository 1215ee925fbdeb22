"""Hinge paths: exact end points, rigid domains, a bend rather than a tear, non-linear."""

from importlib.resources import files

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.errors import InputError
from cryomotion.simulate.adk import adk_morph
from cryomotion.simulate.paths import ADK_DOMAINS, adk_hinge_path, domain_weights, hinge_path
from cryomotion.structure.superpose import rmsd


def _distances(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def test_a_rigid_domain_rotation_is_followed_on_its_arc():
    """A 90° turn of half a rod about its centroid: the mid frame is the 45° turn, not the
    chord's midpoint, and the domain stays rigid all along."""
    rng = np.random.default_rng(0)
    core = rng.normal(size=(20, 3))
    domain = rng.normal(size=(20, 3)) + [10.0, 0.0, 0.0]
    start = np.concatenate([core, domain])
    center = domain.mean(axis=0)
    turn = Rotation.from_rotvec([0.0, 0.0, np.pi / 2]).as_matrix()
    end = np.concatenate([core, (domain - center) @ turn.T + center + [0.0, 2.0, 0.0]])
    weights = np.zeros((1, 40))
    weights[0, 20:] = 1.0
    frames = hinge_path(start, end, weights, 3)
    np.testing.assert_allclose(frames[0], start, atol=1e-9)
    np.testing.assert_allclose(frames[-1], end, atol=1e-9)
    half = Rotation.from_rotvec([0.0, 0.0, np.pi / 4]).as_matrix()
    expected = (domain - center) @ half.T + center + [0.0, 1.0, 0.0]
    np.testing.assert_allclose(frames[1, 20:], expected, atol=1e-9)
    np.testing.assert_allclose(frames[1, :20], core, atol=1e-9)
    np.testing.assert_allclose(_distances(frames[1, 20:]), _distances(domain), atol=1e-9)


def test_adk_hinge_path_ends_at_both_states_and_bends_at_the_hinges():
    reference, frames = adk_hinge_path(21)
    _, linear = adk_morph(21)
    ca = reference.ca_index
    np.testing.assert_allclose(frames[0], reference.coords, atol=1e-9)
    assert rmsd(frames[-1][ca], linear[-1][ca]) < 1e-6  # the closed state, superposed
    bonds = np.linalg.norm(np.diff(frames[0][ca], axis=0), axis=1)
    for frame in frames:  # consecutive Cα stay within 0.7 Å of 3.8 Å: no tearing
        assert np.abs(np.linalg.norm(np.diff(frame[ca], axis=0), axis=1) - bonds).max() < 0.7
    # the LID closes before the NMP domain: half-way, the path is far from the morph
    nearest = min(rmsd(frames[10][ca], frame[ca]) for frame in linear)
    assert nearest > 1.5


def test_domain_weights_fall_off_over_the_blend_residues():
    reference, _ = adk_hinge_path(2)
    weights = domain_weights(reference, ADK_DOMAINS, blend=3)
    numbers = reference.residue_numbers
    lid = list(ADK_DOMAINS).index("LID")
    assert np.all(weights[lid][(numbers >= 122) & (numbers <= 159)] == 1.0)
    np.testing.assert_allclose(weights[lid][numbers == 120], 0.5)
    assert np.all(weights[lid][numbers <= 118] == 0.0)
    with pytest.raises(InputError, match="no atoms"):
        domain_weights(reference, {"X": (900, 950)})


def test_simulate_hinges_flag_writes_the_hinge_path(tmp_path):
    from cryomotion.cli.main import main

    resources = files("cryomotion") / "resources"
    args = ["simulate", "--endpoints", str(resources / "adk_open.pdb")]
    args += [str(resources / "adk_closed.pdb"), "--hinges", "122-159,30-59", "--frames", "21"]
    args += ["--particles", "4", "--box", "64", "--no-progress", "-o", str(tmp_path / "sim")]
    assert main(args) == 0
    truth = np.load(tmp_path / "sim" / "ground_truth.npz")
    reference, frames = adk_hinge_path(21)
    ca = reference.ca_index
    assert truth["frame_coords"].shape == frames.shape
    # placed in the box: compare after superposition
    for mine, theirs in zip(truth["frame_coords"], frames, strict=True):
        assert rmsd(mine[ca], theirs[ca]) < 1e-6
    bad = ["simulate", "--endpoints", str(resources / "adk_open.pdb")]
    bad += [str(resources / "adk_closed.pdb"), "--hinges", "x", "-o", str(tmp_path / "bad")]
    assert main(bad) != 0

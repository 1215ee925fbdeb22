"""Our first non-trivial mode of gramicidin A against ElNemo's mode 7 (an independent ANM).

ElNemo's file holds the structure displaced along its mode 7 (its first non-trivial one)
at amplitudes -100 to +100; the displacement between the two extremes is that mode. ElNemo
computed it on all heavy atoms of 1GRM including the ethanolamine caps (ETA), which its
output leaves out; ProDy's ANM reaches overlap 0.964 on Cα at 15 Å and 0.998 on heavy
atoms at 8 Å.
"""

import numpy as np
import pytest

from cryomotion.dynamics.anm import compute_normal_modes
from cryomotion.dynamics.overlap import overlap


def atom_keys(model, atoms):
    return [f"{model.chain_ids[a]}/{model.residue_numbers[a]}/{model.atom_names[a]}" for a in atoms]


def elnemo_mode_on(model, atoms, elnemo_mode7):
    """ElNemo's mode 7 displacement at ``atoms`` of ``model`` that ElNemo's file holds.

    Returns (positions within ``atoms``, displacement (kept, 3))."""
    elnemo, trajectory = elnemo_mode7
    index = {key: i for i, key in enumerate(atom_keys(elnemo, range(elnemo.n_atoms)))}
    keys = atom_keys(model, atoms)
    kept = np.array([i for i, key in enumerate(keys) if key in index])
    rows = np.array([index[keys[i]] for i in kept])
    return kept, trajectory[-1, rows] - trajectory[0, rows]


def test_elnemo_file_is_a_linear_sweep_of_gramicidin(gramicidin, elnemo_mode7):
    elnemo, trajectory = elnemo_mode7
    assert trajectory.shape == (11, 264, 3)
    kept, _ = elnemo_mode_on(gramicidin, np.arange(gramicidin.n_atoms), elnemo_mode7)
    np.testing.assert_allclose(trajectory[5], gramicidin.coords[kept], atol=1e-3)
    steps = np.diff(trajectory, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[:1], steps.shape), atol=2e-3)


@pytest.mark.parametrize(
    ("nodes", "cutoff", "minimum"),
    [("ca", 15.0, 0.95), ("heavy", 8.0, 0.99)],
)
def test_first_mode_overlaps_elnemo_mode7(gramicidin, elnemo_mode7, nodes, cutoff, minimum):
    modes = compute_normal_modes(gramicidin, n_modes=3, nodes=nodes, cutoff=cutoff)
    kept, displacement = elnemo_mode_on(gramicidin, modes.cg_indices, elnemo_mode7)
    found = overlap(modes.cg_vectors[:1, kept], displacement)[0]
    print(f"overlap with ElNemo mode 7, {nodes} nodes at {cutoff:g} Å: {found:.4f}")
    assert found >= minimum


def test_ca_nodes_skip_the_ethanolamine_caps(gramicidin):
    modes = compute_normal_modes(gramicidin, n_modes=1)
    assert modes.n_nodes == 30
    assert "ETA" not in set(gramicidin.residue_names[modes.cg_indices])

"""Backbone frames: orthonormal, right-handed, AlphaFold's axes, local coordinates invert."""

from __future__ import annotations

import numpy as np

from cryomotion.structure.frames import backbone_frames, local_coordinates
from cryomotion.structure.io import read_model


def test_frames_are_rotations_with_alphafold_axes(adk_open_path):
    model = read_model(adk_open_path)
    frames = backbone_frames(model)
    assert frames.has_backbone.all()
    r = frames.rotations
    np.testing.assert_allclose(
        r.transpose(0, 2, 1) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    ca = model.coords[frames.ca_index]
    c = model.coords[frames.c_index]
    n = model.coords[frames.n_index]
    np.testing.assert_allclose(frames.origins, ca)
    # e1 along C - CA; N lies in the (e1, e2) plane on the e2 > 0 side
    e1 = (c - ca) / np.linalg.norm(c - ca, axis=1, keepdims=True)
    np.testing.assert_allclose(r[:, :, 0], e1, atol=1e-12)
    local_n = np.einsum("rji,rj->ri", r, n - ca)
    np.testing.assert_allclose(local_n[:, 2], 0.0, atol=1e-10)
    assert (local_n[:, 1] > 0).all()


def test_local_coordinates_invert(hiv_protease_path):
    model = read_model(hiv_protease_path)  # two chains and a ligand
    # residue 5 loses its C: a frame without a backbone (identity axes at its centroid)
    drop = np.nonzero((model.residue_index == 5) & (model.atom_names == "C"))[0]
    model = model.select(np.setdiff1d(np.arange(model.n_atoms), drop))
    frames = backbone_frames(model)
    assert not frames.has_backbone[5] and frames.has_backbone[4]
    np.testing.assert_allclose(frames.rotations[5], np.eye(3))
    np.testing.assert_allclose(frames.origins[5], model.coords[model.residue_index == 5].mean(0))
    local = local_coordinates(model, frames)
    residue = model.residue_index
    back = frames.origins[residue] + np.einsum("aij,aj->ai", frames.rotations[residue], local)
    np.testing.assert_allclose(back, model.coords, atol=1e-10)

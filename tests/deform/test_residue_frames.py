"""AtomVAE's residue-frame deformation: identity at zero, Gram–Schmidt gradients, rigid
residue motions, continuity and centering terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.deform.residue_frames import ResidueFrameDeformation, frame_updates
from cryomotion.geometry.rotations import gram_schmidt
from cryomotion.structure.io import read_model


@pytest.fixture(scope="module")
def adk(adk_open_path):
    return read_model(adk_open_path)


@pytest.fixture(scope="module")
def deformation(adk):
    torch.manual_seed(0)
    return ResidueFrameDeformation(adk, latent_dim=4, width=32, blocks=2, representation=16)


def test_zero_output_is_identity(deformation, adk):
    # a fresh decoder's last layer is zero: every latent gives the reference
    with torch.no_grad():
        out = deformation(torch.randn(3, 4))
    np.testing.assert_allclose(
        out.points.detach().numpy(), np.broadcast_to(adk.coords, (3, adk.n_atoms, 3)), atol=1e-4
    )
    assert float(out.regularization["continuity"]) < 1e-9
    assert float(out.regularization["centering"]) < 1e-9
    translations, rotations = frame_updates(torch.zeros(2, 5, 9), 1.0, 1.0)
    assert torch.equal(translations, torch.zeros(2, 5, 3))
    torch.testing.assert_close(rotations, torch.eye(3).expand(2, 5, 3, 3))


def test_gram_schmidt_gradcheck_float64():
    six = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_schmidt, (six,))
    # and through the frame update of the decoder output (translation + e + v)
    raw = 0.3 * torch.randn(2, 3, 9, dtype=torch.float64)
    raw.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: frame_updates(x, 2.0, 0.5)[1], (raw,))


def test_known_frame_update_moves_residue_rigidly(deformation, adk):
    residue = 17
    atoms = np.nonzero(adk.residue_index == residue)[0]
    others = np.nonzero(adk.residue_index != residue)[0]
    q = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    t = np.array([1.5, -2.0, 0.5])
    translations = torch.zeros(1, adk.n_residues, 3, dtype=torch.float64)
    rotations = torch.eye(3, dtype=torch.float64).repeat(1, adk.n_residues, 1, 1)
    translations[0, residue] = torch.as_tensor(t)
    rotations[0, residue] = torch.as_tensor(q)
    moved = deformation.double().apply_frames(translations, rotations)[0].numpy()
    deformation.float()
    # the update acts in the residue's backbone frame (R0, origin Cα):
    # x' = o + R0 t + R0 q R0ᵀ (x - o)
    frames_r = deformation.axes.double().numpy()[residue]
    origin = adk.coords[adk.ca_index[residue]]
    expected = origin + frames_r @ t + (adk.coords[atoms] - origin) @ (frames_r @ q @ frames_r.T).T
    np.testing.assert_allclose(moved[atoms], expected, atol=1e-4)
    np.testing.assert_allclose(moved[others], adk.coords[others], atol=1e-4)
    # rigid: all distances within the residue kept
    before = np.linalg.norm(adk.coords[atoms, None] - adk.coords[None, atoms], axis=-1)
    after = np.linalg.norm(moved[atoms, None] - moved[None, atoms], axis=-1)
    np.testing.assert_allclose(after, before, atol=1e-4)


def test_continuity_sees_a_stretched_bond_but_not_a_chain_break(adk):
    deformation = ResidueFrameDeformation(
        adk, 2, width=8, blocks=1, representation=8, centering_weight=0.0, continuity_weight=1.0
    )
    n_res = adk.n_residues
    # move the last residue away by 5 Å: one Cα pair and one peptide bond change
    translations = torch.zeros(1, n_res, 3)
    rotations = torch.eye(3).repeat(1, n_res, 1, 1)
    translations[0, -1] = torch.tensor([0.0, 0.0, 5.0])
    with torch.no_grad():
        points = deformation.apply_frames(translations, rotations)
    terms = deformation.regularization(points)
    assert float(terms["continuity"]) > 0.01
    # n_res - 1 Cα pairs and as many peptide bonds in one-chain AdK
    assert len(deformation.bond_pairs) == 2 * (n_res - 1)
    # a chain break: the same model cut in two chains has one pair fewer of each
    chains = np.where(adk.residue_index < 100, "A", "B")
    from dataclasses import replace

    broken = replace(adk, chain_ids=chains)
    split = ResidueFrameDeformation(broken, 2, width=8, blocks=1, representation=8)
    assert len(split.bond_pairs) == 2 * (n_res - 2)


def test_centering_penalises_a_global_translation(adk):
    deformation = ResidueFrameDeformation(
        adk, 2, width=8, blocks=1, representation=8, centering_weight=0.1
    )
    points = deformation.reference[None] + torch.tensor([3.0, 0.0, 4.0])
    terms = deformation.regularization(points)
    assert float(terms["centering"]) == pytest.approx(0.1 * 25.0, rel=1e-5)
    assert float(terms["continuity"]) == pytest.approx(0.0, abs=1e-8)

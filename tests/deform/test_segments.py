"""cryoSPHERE's segment deformation: identity at start, rigid segments, known rotations,
chain awareness, the mixture posterior, and float32 safety at extreme parameters."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.deform.base import Deformation
from cryomotion.deform.restraints import clash_candidates, clash_loss
from cryomotion.deform.segments import SegmentDeformation
from cryomotion.structure.io import read_model

ATOMS_PER_RESIDUE = 3


def _helix(n_residues: int, seed: int = 0) -> dict:
    """Arrays of an α-helix-like chain: Cα 3.8 Å apart, 3 atoms per residue (one is Cα)."""
    turn = np.deg2rad(100.0) * np.arange(n_residues)
    centers = np.stack([2.3 * np.cos(turn), 2.3 * np.sin(turn), 1.5 * np.arange(n_residues)], 1)
    offsets = np.random.default_rng(seed).normal(0, 1.0, (n_residues, ATOMS_PER_RESIDUE, 3))
    offsets[:, 0] = 0.0
    return dict(
        reference=(centers[:, None] + offsets).reshape(-1, 3),
        residue_index=np.repeat(np.arange(n_residues), ATOMS_PER_RESIDUE),
        residue_chain=np.array(["A"] * n_residues),
        residue_centers=centers,
    )


def _one_hot(deformation: SegmentDeformation) -> torch.Tensor:
    """(R, M) hard membership of the posterior-mean segmentation."""
    segment = torch.as_tensor(deformation.segment_of_residue())
    return torch.nn.functional.one_hot(segment, deformation.n_segments).float()


def _force_membership(monkeypatch, deformation, membership):
    monkeypatch.setattr(deformation, "membership", lambda sample=False: membership)


def _set_motion(deformation, segment, v=(0.0, 0.0, 0.0), t=(0.0, 0.0, 0.0)):
    """Decoder output v (quaternion vector part) and t for ``segment``, whatever the latent."""
    last = deformation.decoder[-1]
    with torch.no_grad():
        last.bias[6 * segment : 6 * segment + 3] = torch.tensor(v)
        last.bias[6 * segment + 3 : 6 * segment + 6] = torch.tensor(t)


def _randomise_motion(deformation, std=0.3, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        deformation.decoder[-1].weight.normal_(0.0, std)
        deformation.decoder[-1].bias.normal_(0.0, std)


@pytest.fixture(scope="module")
def adk(adk_open_path):
    return read_model(adk_open_path)


def test_fresh_decoder_is_exactly_the_reference():
    arrays = _helix(40)
    deformation = SegmentDeformation(**arrays, latent_dim=5, n_segments=4)
    assert isinstance(deformation, Deformation)
    assert (deformation.latent_dim, deformation.n_atoms, deformation.latent_scale) == (5, 120, 1.0)
    assert (deformation.n_segments, deformation.n_residues) == (4, 40)
    reference = torch.tensor(arrays["reference"], dtype=torch.float32)
    for training in (True, False):
        deformation.train(training)
        output = deformation(torch.randn(3, 5) * 10)
        assert output.coords.dtype == torch.float32 and output.coords.shape == (3, 120, 3)
        assert torch.equal(output.coords, reference.expand(3, -1, -1))
        assert set(output.regularization) == {"segmentation_kl"}
    # v = 0 exactly at the start: the rotation's series branch must still pass gradients.
    output.coords.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in deformation.parameters() if p.grad is not None)
    assert deformation.decoder[-1].weight.grad.abs().max() > 0
    with pytest.raises(ValueError, match="latents of shape"):
        deformation(torch.zeros(2, 4))


def test_decoder_can_start_dependent_on_the_latent():
    """decoder_init > 0: still the reference at z = 0, but z moves the segments from the
    start (no saddle with a zero-started encoder head), by about decoder_init per unit z."""
    arrays = _helix(40)
    torch.manual_seed(0)
    deformation = SegmentDeformation(**arrays, latent_dim=5, n_segments=4, decoder_init=0.1)
    deformation.eval()
    reference = torch.tensor(arrays["reference"], dtype=torch.float32)
    assert torch.allclose(deformation(torch.zeros(1, 5)).coords[0], reference, atol=1e-5)
    moved = deformation(torch.randn(1, 5)).coords[0]
    assert (moved - reference).norm(dim=-1).max() > 0.01
    last = deformation.decoder[-1]
    assert float(last.weight.detach().std() * last.in_features**0.5) == pytest.approx(0.1, rel=0.1)


def test_membership_rows_and_contiguous_segments_at_high_temperature():
    arrays = _helix(40)
    soft = SegmentDeformation(**arrays, latent_dim=2, n_segments=4).membership()
    assert soft.shape == (40, 4) and torch.isfinite(soft).all()
    torch.testing.assert_close(soft.sum(1), torch.ones(40))
    hard = SegmentDeformation(**arrays, latent_dim=2, n_segments=4, temperature=1000.0)
    membership = hard.membership()
    assert membership.max(1).values.min() > 1 - 1e-6
    segments = hard.segment_of_residue()
    # Contiguous equal runs following the chain: 0×10, 1×10, 2×10, 3×10.
    np.testing.assert_array_equal(segments, np.repeat(np.arange(4), 10))
    means, widths, logits = (p.detach() for p in hard.gmm_parameters())
    np.testing.assert_allclose(means.numpy(), [4.5, 14.5, 24.5, 34.5], atol=1e-5)
    np.testing.assert_allclose(widths.numpy(), 5.0 + 1e-3, rtol=1e-6)
    assert torch.equal(logits, torch.zeros(4))


@pytest.mark.parametrize("n_segments", [20, 214])
def test_adk_float32_finite_at_extreme_mixture_parameters(adk, n_segments):
    deformation = SegmentDeformation.from_model(
        adk, 4, n_segments, continuity_weight=1.0, clash_weight=1.0, hidden=(32,)
    )
    _randomise_motion(deformation)
    latents = torch.randn(2, 4)
    extremes = [
        {},
        {"width_nu": -50.0},
        {"width_nu": 50.0},
        {"mean_nu": 1e4},
        {"mean_nu": -1e4, "width_nu": -50.0},
        {"weight_nu": 100.0, "width_nu": -50.0},
        {"width_log_beta": 3.0, "mean_log_beta": 3.0},
    ]
    for values in extremes:
        for training in (True, False):
            deformation.train(training)
            deformation.zero_grad()
            with torch.no_grad():
                for name, value in values.items():
                    param = getattr(deformation, name)
                    param.fill_(value)
                    param[::2] *= -1 if name == "weight_nu" else 1
            output = deformation(latents)
            loss = output.coords.square().mean() + sum(output.regularization.values())
            loss.backward()
            assert torch.isfinite(output.coords).all(), values
            assert all(torch.isfinite(v) for v in output.regularization.values()), values
            for name, param in deformation.named_parameters():
                assert param.grad is not None and torch.isfinite(param.grad).all(), (values, name)
            membership = deformation.membership()
            assert torch.isfinite(membership).all()
            torch.testing.assert_close(membership.sum(1), torch.ones(adk.n_residues))
            with torch.no_grad():  # back to the initial posterior
                for name, _ in deformation.named_parameters():
                    if name.endswith("_nu"):
                        getattr(deformation, name).zero_()
                    elif name.endswith("_log_beta"):
                        getattr(deformation, name).fill_(-4.0)


def test_chain_awareness_and_cross_chain():
    arrays = _helix(160)
    arrays["residue_chain"] = np.array(["A"] * 100 + ["B"] * 60)
    # τ = 1: a soft mixture, where other chains' segments would clearly leak in.
    chained = SegmentDeformation(**arrays, latent_dim=2, n_segments=6, temperature=1.0)
    segments = chained.segment_of_residue()
    # Segments shared out in proportion to the chain lengths: 4 for A (100), 2 for B (60).
    assert set(segments[:100]) == {0, 1, 2, 3} and set(segments[100:]) == {4, 5}
    with torch.no_grad():
        chained.mean_nu[:4] = 3.0  # push chain A's segments into chain B's residues
    membership = chained.membership()
    assert membership[:100, 4:].max() <= 1e-6 and membership[100:, :4].max() <= 1e-6
    assert torch.isfinite(membership).all()
    torch.testing.assert_close(membership.sum(1), torch.ones(160))

    crossing = SegmentDeformation(
        **arrays, latent_dim=2, n_segments=6, temperature=1.0, cross_chain=True
    )
    leak = crossing.membership()
    assert leak[:100, 4:].max() > 1e-3 and leak[100:, :4].max() > 1e-3

    with pytest.raises(ValueError, match="chains"):
        SegmentDeformation(**arrays, latent_dim=2, n_segments=1)
    single = SegmentDeformation(**arrays, latent_dim=2, n_segments=1, cross_chain=True)
    assert (single.segment_of_residue() == 0).all()
    with pytest.raises(ValueError, match="n_segments"):
        SegmentDeformation(**arrays, latent_dim=2, n_segments=161)


def _pairwise(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@pytest.mark.parametrize("forced", [True, False])
def test_hard_segments_move_rigidly(monkeypatch, forced):
    arrays = _helix(40)
    deformation = SegmentDeformation(
        **arrays, latent_dim=3, n_segments=4, temperature=1000.0, hidden=(16,)
    )
    if forced:
        _force_membership(monkeypatch, deformation, _one_hot(deformation))
    deformation.eval()
    _randomise_motion(deformation, std=1.0)
    coords = deformation(torch.randn(2, 3)).coords.detach().numpy()
    reference = arrays["reference"]
    segment_of_atom = deformation.segment_of_residue()[arrays["residue_index"]]
    moved = np.abs(coords - reference).max()
    assert moved > 5.0  # a real motion, not the identity
    for m in range(4):
        atoms = segment_of_atom == m
        for b in range(2):
            np.testing.assert_allclose(
                _pairwise(coords[b, atoms]), _pairwise(reference[atoms]), atol=2e-3
            )


def test_rotation_without_translation_keeps_segment_centre(monkeypatch):
    arrays = _helix(40)
    deformation = SegmentDeformation(**arrays, latent_dim=2, n_segments=4, hidden=(8,))
    _force_membership(monkeypatch, deformation, _one_hot(deformation))
    for m in range(4):
        _set_motion(deformation, m, v=np.tan(0.4 + 0.3 * m) * np.array([0.6, 0.0, 0.8]))
    coords = deformation(torch.zeros(1, 2)).coords[0].detach().numpy()
    centers = arrays["residue_centers"]
    moved_centers = coords[::ATOMS_PER_RESIDUE]  # atom 0 of each residue is its Cα
    for m in range(4):
        rows = slice(10 * m, 10 * m + 10)
        np.testing.assert_allclose(moved_centers[rows].mean(0), centers[rows].mean(0), atol=1e-4)
        assert np.abs(moved_centers[rows] - centers[rows]).max() > 1.0


def test_known_rotation_and_translation(monkeypatch):
    arrays = _helix(40)
    deformation = SegmentDeformation(
        **arrays, latent_dim=2, n_segments=4, hidden=(8,), translation_scale=2.0
    )
    _force_membership(monkeypatch, deformation, _one_hot(deformation))
    theta, axis = 0.7, np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    shift = np.array([1.5, -0.5, 1.0])
    _set_motion(deformation, 1, v=np.tan(theta / 2) * axis, t=shift)
    coords = deformation(torch.randn(2, 2)).coords.detach().numpy().astype(np.float64)

    reference = arrays["reference"]
    atoms = arrays["residue_index"] // 10 == 1
    center = arrays["residue_centers"][10:20].mean(0)
    rotation = Rotation.from_rotvec(theta * axis).as_matrix()
    expected = (reference[atoms] - center) @ rotation.T + center + 2.0 * shift
    for b in range(2):
        np.testing.assert_allclose(coords[b, atoms], expected, atol=1e-4)
        np.testing.assert_array_equal(  # the other segments do not move at all
            coords[b, ~atoms], reference[~atoms].astype(np.float32)
        )

    transforms = deformation.transforms(torch.zeros(1, 2))
    assert transforms.rotations.shape == (1, 4, 3, 3)
    np.testing.assert_allclose(transforms.rotations[0, 1].detach().numpy(), rotation, atol=1e-6)
    np.testing.assert_allclose(transforms.angles[0].detach().numpy(), [0, theta, 0, 0], atol=1e-6)
    np.testing.assert_allclose(transforms.axes[0, 1].detach().numpy(), axis, atol=1e-6)
    assert torch.equal(transforms.axes[0, 0], torch.zeros(3))
    np.testing.assert_allclose(transforms.translations[0, 1].detach().numpy(), 2 * shift)
    np.testing.assert_allclose(transforms.centers[1].detach().numpy(), center, atol=1e-4)


def test_soft_membership_matches_successive_rotations():
    """The composed per-residue affine equals the paper's loop: rotate by G_im·δ_m about
    segment m's axis through its centre, m = 1..M in order, then add Σ_m G_im t_m."""
    arrays = _helix(30)
    deformation = SegmentDeformation(
        **arrays, latent_dim=2, n_segments=5, temperature=1.0, hidden=(8,)
    ).eval()
    _randomise_motion(deformation, std=0.5, seed=3)
    latents = torch.randn(2, 2)
    coords = deformation(latents).coords.detach().numpy()
    transforms = deformation.transforms(latents)
    membership = deformation.membership().detach().double().numpy()
    assert membership.max(1).min() < 0.9  # genuinely soft
    centers = transforms.centers.detach().double().numpy()
    rotvecs = (transforms.angles[..., None] * transforms.axes).detach().double().numpy()
    translations = transforms.translations.detach().double().numpy()
    for b in range(2):
        for i in range(30):
            x = arrays["reference"][arrays["residue_index"] == i]
            for m in range(5):
                rotation = Rotation.from_rotvec(membership[i, m] * rotvecs[b, m]).as_matrix()
                x = (x - centers[m]) @ rotation.T + centers[m]
            x = x + membership[i] @ translations[b]
            np.testing.assert_allclose(
                coords[b, arrays["residue_index"] == i], x, atol=1e-4, rtol=0
            )


def test_posterior_sampling_and_kl():
    arrays = _helix(40)
    deformation = SegmentDeformation(
        **arrays, latent_dim=2, n_segments=4, hidden=(8,), segmentation_kl_weight=0.5
    )
    _randomise_motion(deformation, std=0.5)
    # nu = 0, log β = −4: KL = 12 · (0.5·(e^−8 − 1) + 4)
    expected = 12 * (0.5 * (np.exp(-8.0) - 1) + 4.0)
    assert deformation.kl_divergence().item() == pytest.approx(expected, rel=1e-6)
    with torch.no_grad():
        for name in ("mean", "width", "weight"):
            getattr(deformation, f"{name}_log_beta").zero_()
    assert deformation.kl_divergence().item() == 0.0  # posterior equal to the prior
    latents = torch.randn(2, 2)
    deformation.train()
    first, second = deformation(latents), deformation(latents)
    assert not torch.allclose(first.coords, second.coords)
    assert not torch.allclose(deformation.membership(sample=True), deformation.membership())
    deformation.eval()
    assert torch.equal(deformation(latents).coords, deformation(latents).coords)
    with torch.no_grad():
        deformation.mean_nu.fill_(0.5)
        for name in ("mean", "width", "weight"):
            getattr(deformation, f"{name}_log_beta").fill_(-1.0)
    per_mean = 0.5 * (np.exp(-2.0) + 0.25 - 1) + 1.0
    per_other = 0.5 * (np.exp(-2.0) - 1) + 1.0
    kl = 4 * per_mean + 8 * per_other
    assert deformation.kl_divergence().item() == pytest.approx(kl, rel=1e-6)
    regularization = deformation(latents).regularization
    assert regularization["segmentation_kl"].item() == pytest.approx(0.5 * kl, rel=1e-6)


def test_regularization_terms_follow_their_weights():
    arrays = _helix(20)
    arrays["residue_centers"] = arrays["residue_centers"].copy()
    arrays["residue_centers"][7] = arrays["residue_centers"][3]  # a clash in the reference
    none = SegmentDeformation(**arrays, latent_dim=2, n_segments=2, segmentation_kl_weight=0)
    assert none(torch.zeros(1, 2)).regularization == {}
    both = SegmentDeformation(
        **arrays, latent_dim=2, n_segments=2, continuity_weight=2.0, clash_weight=3.0
    )
    regularization = both(torch.zeros(1, 2)).regularization
    assert set(regularization) == {"segmentation_kl", "continuity", "clash"}
    assert regularization["continuity"].item() == 0.0  # the reference keeps its bonds
    centers = torch.tensor(arrays["residue_centers"], dtype=torch.float32)[None]
    pairs = torch.tensor(clash_candidates(arrays["residue_chain"], 20))
    expected = 3.0 * clash_loss(centers, pairs, 4.0)
    assert expected.item() > 0
    torch.testing.assert_close(regularization["clash"], expected)


def test_from_model_uses_ca_or_centroid(adk):
    ca_atom = adk.ca_index[5]
    model = adk.select(np.arange(adk.n_atoms) != ca_atom)  # residue 5 loses its Cα
    deformation = SegmentDeformation.from_model(model, 3, 10)
    centers = deformation.residue_centers.numpy()
    has_ca = model.ca_index >= 0
    assert not has_ca[5] and has_ca.sum() == model.n_residues - 1
    np.testing.assert_allclose(centers[has_ca], model.coords[model.ca_index[has_ca]], atol=1e-4)
    centroid = model.coords[model.residue_index == 5].mean(0)
    np.testing.assert_allclose(centers[5], centroid, atol=1e-4)
    assert deformation.n_residues == model.n_residues and deformation.n_atoms == model.n_atoms


def test_segmentation_learns_a_shifted_boundary():
    """Gradients reach the mixture: with the motion known, fitting coordinates made with a
    domain boundary at residue 14 moves the initial boundary (20) there."""
    arrays = _helix(40)
    deformation = SegmentDeformation(
        **arrays, latent_dim=1, n_segments=2, hidden=(4,), segmentation_kl_weight=0
    ).eval()
    _set_motion(deformation, 0, v=np.tan(0.3) * np.array([1.0, 0.0, 0.0]), t=(3.0, 0.0, 0.0))
    truth = torch.zeros(40, 2)
    truth[:14, 0] = truth[14:, 1] = 1.0
    latents = torch.zeros(1, 1)
    with torch.no_grad():
        rotation, offset = deformation._residue_affines(latents, truth)
        atoms = deformation.residue_index
        target = torch.einsum("bnij,nj->bni", rotation[:, atoms], deformation.reference)
        target = target + offset[:, atoms]
    mixture = [deformation.mean_nu, deformation.width_nu, deformation.weight_nu]
    optimizer = torch.optim.Adam(mixture, lr=0.05)
    assert (deformation.segment_of_residue()[:20] == 0).all()
    for _ in range(200):
        optimizer.zero_grad()
        loss = (deformation(latents).coords - target).square().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-2
    np.testing.assert_array_equal(deformation.segment_of_residue(), np.repeat([0, 1], [14, 26]))

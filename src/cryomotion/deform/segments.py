"""Segments of the residue chain moving as rigid bodies (cryoSPHERE, seed 001, §3.3–3.5).

A Gaussian mixture over the residue position (0..R−1 along the chains) softly assigns each
residue to one of M segments (membership G, residues × segments, eq. 6). An MLP maps a
latent z to one rotation (quaternion) and one translation per segment. Each residue's atoms
are rotated successively about every segment's axis through that segment's centre of mass
by the angle G_im·δ_m, then translated by Σ_m G_im t_m. With a one-hot G every segment
moves exactly rigidly.

The mixture parameters are global (shared by all particles) and have a Gaussian variational
posterior with a standard-normal prior, in standardised units (see ``SegmentDeformation``).
Everything is computed in log space with floored widths, so no width can underflow to 0 and
turn the membership into NaN (as the reference implementation did on AdK with 20 segments).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cryomotion import geometry
from cryomotion.deform.base import Deformation, Deformed
from cryomotion.deform.restraints import (
    clash_candidates,
    clash_loss,
    consecutive_pairs,
    continuity_loss,
    pair_distances,
)
from cryomotion.structure.model import AtomicModel

WIDTH_FLOOR = 1e-3  # residues, added to every mixture width so log φ stays finite
MAX_STANDARD_SCORE = 1e12  # |i − μ|/σ clamp: keeps τ·z²/2 far below float32's maximum
MIN_LOGIT = -1e30  # finite floor of the membership logits before the chain mask
CENTER_EPS = 1e-6  # residues of weight pulling an empty segment's centre to the centroid
SMALL_V2 = 1e-8  # |v|² below which the rotation uses its series (angle < 2e-4 rad)


class SegmentTransforms(NamedTuple):
    """Per-segment rigid motions decoded from a batch of latents.

    rotations : (B, M, 3, 3) rotation matrices of the segments (about their centres).
    angles : (B, M) rotation angles δ in radians, in [0, π).
    axes : (B, M, 3) unit rotation axes; (0, 0, 0) where the angle is 0.
    translations : (B, M, 3) Å.
    centers : (M, 3) Å, the segments' centres of mass (posterior-mean membership).
    """

    rotations: torch.Tensor
    angles: torch.Tensor
    axes: torch.Tensor
    translations: torch.Tensor
    centers: torch.Tensor


def _chains_in_order(residue_chain: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(R,) int chain code per residue, in order of first appearance, and the chain ids."""
    ids = np.asarray(residue_chain).astype(str)
    names = list(dict.fromkeys(ids.tolist()))
    lookup = {name: k for k, name in enumerate(names)}
    return np.array([lookup[c] for c in ids], dtype=np.int64), names


def _allocate_segments(lengths: list[int], n_segments: int) -> list[int]:
    """Segments per chain, proportional to the chain lengths (D'Hondt), each ≥ 1, ≤ length."""
    counts = [1] * len(lengths)
    for _ in range(n_segments - len(lengths)):
        open_chains = [k for k in range(len(lengths)) if counts[k] < lengths[k]]
        best = max(open_chains, key=lambda k: lengths[k] / counts[k])
        counts[best] += 1
    return counts


def _rotation_vectors(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quaternion q = (1, v)/|(1, v)| as a rotation vector, safe at v = 0.

    v : (..., 3). Returns ω (..., 3) = δ·v/|v| with δ = 2·atan(|v|) ∈ [0, π), the angle δ
    (...,), and ``small`` (...,) bool where |v|² < SMALL_V2: there ω = 2v(1 − |v|²/3), the
    series of 2·atan(r)/r, and δ ≈ 2|v| written as 2|v|²/sqrt(|v|² + 1e-30) (0 at v = 0).
    """
    r2 = (v * v).sum(-1)
    small = r2 < SMALL_V2
    # sqrt of a guarded value: the gradient of |v| at v = 0 would be NaN.
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    angle = 2.0 * torch.atan(r)
    scale = torch.where(small, 2.0 - 2.0 * r2 / 3.0, angle / r)
    tiny_angle = 2.0 * r2 / torch.sqrt(r2 + 1e-30)
    return scale[..., None] * v, torch.where(small, tiny_angle, angle), small


def _rodrigues_coefficients(
    fraction: torch.Tensor, angle: torch.Tensor, small: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients of R = I + f1·[ω]× + f2·[ω]×² for the rotation by fraction·δ about ω/δ.

    fraction : (..., M) membership G (broadcast against angle); angle, small : (B, 1, M) or
    broadcastable. f1 = sin(Gδ)/δ, f2 = 2 sin²(Gδ/2)/δ² (no 1 − cos cancellation); their
    limits G and G²/2 where δ is tiny.
    """
    safe = torch.where(small, torch.ones_like(angle), angle)
    half = torch.sin(0.5 * fraction * safe)
    f1 = torch.where(small, fraction, torch.sin(fraction * safe) / safe)
    f2 = torch.where(small, 0.5 * fraction * fraction, 2.0 * half * half / (safe * safe))
    return f1, f2


def _cross(a: tuple, b: tuple) -> tuple:
    """a × b of vectors given as their (x, y, z) component tensors."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _compose_quaternions(
    w: torch.Tensor, u: tuple, offsets: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose the rigid maps x -> R_m x + t_m, m = 0..M−1 in order, given by unit quaternions
    (w, u) (scalar part w (M, ...), vector components u = (x, y, z) each (M, ...)) and
    offsets t (components, each (M, ...)). Returns the rotation matrices (..., 3, 3) and
    offsets (..., 3) of the composed map.

    Component tensors rather than (..., 3, 3) matrices: for the B·R·M tiny rotations of a
    batch each step is a few elementwise products, several times faster on a CPU (forward
    and backward) than 3×3 matrix products."""
    qw, q, b = w[0], tuple(c[0] for c in u), tuple(c[0] for c in offsets)
    for m in range(1, w.shape[0]):
        pw, p = w[m], tuple(c[m] for c in u)
        # b -> R_m b + t_m, with R_m b = b + 2 w (p × b) + 2 p × (p × b)
        pb = _cross(p, b)
        ppb = _cross(p, pb)
        b = tuple(b[i] + 2.0 * (pw * pb[i] + ppb[i]) + offsets[i][m] for i in range(3))
        # q -> p ⊗ q
        pq = _cross(p, q)
        qw, q = (
            pw * qw - p[0] * q[0] - p[1] * q[1] - p[2] * q[2],
            tuple(pw * q[i] + qw * p[i] + pq[i] for i in range(3)),
        )
    x, y, z = q
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - qw * z), 2 * (x * z + qw * y)),
        (2 * (x * y + qw * z), 1 - 2 * (x * x + z * z), 2 * (y * z - qw * x)),
        (2 * (x * z - qw * y), 2 * (y * z + qw * x), 1 - 2 * (x * x + y * y)),
    )
    rotation = torch.stack([torch.stack(row, -1) for row in rows], -2)
    return rotation, torch.stack(b, -1)


class SegmentDeformation(Deformation):
    """cryoSPHERE's decoder: a learned soft segmentation moved by per-segment rigid motions.

    Parameters (keyword only)
    ----------
    reference : (atoms, 3) Å, the reference coordinates.
    residue_index : (atoms,) int in 0..R−1, each atom's residue.
    residue_chain : (R,) chain id (str) of each residue.
    residue_centers : (R, 3) Å, one point per residue (Cα): the segments' centres of mass
        and the restraints use them.
    latent_dim : L ≥ 1, the size of the latents (N(0, 1) in a VAE, so ``latent_scale`` = 1).
    n_segments : M, 1..R; unless ``cross_chain``, at least one per chain.
    temperature : τ of eq. 6 (paper: 20); larger makes the membership closer to one-hot.
    hidden : hidden widths of the ReLU MLP mapping z to the motions.
    cross_chain : let a segment hold residues of several chains (default: each segment
        belongs to one chain, so chains never share a rigid body).
    segmentation_kl_weight : weight of KL(q(mixture) || N(0, I)) in the regularization.
    continuity_weight : weight of the bonded Cα distance term, Å⁻² (0: off, as the paper).
    clash_weight : weight of the non-adjacent Cα clash term, Å⁻² (0: off).
    clash_distance : Å, Cα pairs closer than this clash.
    translation_scale : Å of translation per unit of decoder output.
    segmentation_lr : learning rate of the mixture's posterior parameters (None: the
        trainer's); they are few and shared by all images, so they can move faster.
    decoder_init : std of the decoder's output layer weights times √(its inputs), its bias
        set so that z = 0 is still the identity (0: a fresh decoder ignores z).

    The mixture has, per segment m, a mean μ_m and width σ_m (residues) and a logit α_m.
    Each is the image of a standardised ε with posterior N(ν, β²) and prior N(0, 1):
    μ_m = μ0_m + s_m·ε_μ, σ_m = s_m/2·(ELU(ε_σ) + 1) + WIDTH_FLOOR, α_m = ε_α, where μ0_m
    are evenly spaced segment centres within each chain and s_m the chain's residues per
    segment. ε is sampled (reparameterised) in training mode and equals ν in eval mode.
    ν starts at 0 and log β at −4, so the segmentation starts as contiguous equal runs.
    """

    def __init__(
        self,
        *,
        reference: np.ndarray,
        residue_index: np.ndarray,
        residue_chain: np.ndarray,
        residue_centers: np.ndarray,
        latent_dim: int,
        n_segments: int,
        temperature: float = 20.0,
        hidden: tuple[int, ...] = (256, 256),
        cross_chain: bool = False,
        segmentation_kl_weight: float = 1e-4,
        continuity_weight: float = 0.0,
        clash_weight: float = 0.0,
        clash_distance: float = 4.0,
        translation_scale: float = 1.0,
        segmentation_lr: float | None = None,
        decoder_init: float = 0.0,
    ):
        super().__init__()
        reference = np.asarray(reference, dtype=np.float64)
        residue_index = np.asarray(residue_index)
        residue_chain = np.asarray(residue_chain).astype(str).reshape(-1)
        residue_centers = np.asarray(residue_centers, dtype=np.float64)
        n_residues = len(residue_chain)
        if reference.ndim != 2 or reference.shape[1] != 3:
            raise ValueError(f"reference of shape {reference.shape}, expected (atoms, 3)")
        if residue_index.shape != (len(reference),):
            raise ValueError(
                f"residue_index of shape {residue_index.shape}, expected ({len(reference)},)"
            )
        if n_residues == 0:
            raise ValueError("SegmentDeformation needs at least one residue")
        if len(residue_index) and (residue_index.min() < 0 or residue_index.max() >= n_residues):
            raise ValueError(f"residue_index must lie in 0..{n_residues - 1}")
        if residue_centers.shape != (n_residues, 3):
            raise ValueError(
                f"residue_centers of shape {residue_centers.shape}, expected ({n_residues}, 3)"
            )
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        chain, chain_names = _chains_in_order(residue_chain)
        n_chains = len(chain_names)
        if not 1 <= n_segments <= n_residues:
            raise ValueError(f"n_segments = {n_segments}: must lie in 1..{n_residues} (residues)")
        if n_segments < n_chains and not cross_chain:
            raise ValueError(
                f"n_segments = {n_segments} < {n_chains} chains: each chain needs a segment "
                "(or set cross_chain=True)"
            )

        self.latent_dim = int(latent_dim)
        self.n_atoms = len(reference)
        self.latent_scale = 1.0
        self.n_segments = int(n_segments)
        self.n_residues = n_residues
        self.temperature = float(temperature)
        self.cross_chain = bool(cross_chain)
        self.segmentation_kl_weight = float(segmentation_kl_weight)
        self.continuity_weight = float(continuity_weight)
        self.clash_weight = float(clash_weight)
        self.clash_distance = float(clash_distance)
        self.translation_scale = float(translation_scale)
        self.segmentation_lr = segmentation_lr
        self.chain_names = chain_names

        # Initial mixture: segments shared out among chains by length, evenly spaced inside.
        groups = [np.nonzero(chain == k)[0] for k in range(n_chains)]
        if n_segments < n_chains:  # cross_chain with fewer segments than chains
            groups = [np.arange(n_residues)]
        counts = _allocate_segments([len(g) for g in groups], n_segments)
        mean0, spacing, segment_chain = [], [], []
        for group, count in zip(groups, counts):
            step = len(group) / count
            rank = (np.arange(count) + 0.5) * step - 0.5  # centre of each run, chain-local
            mean0.extend(np.interp(rank, np.arange(len(group)), group.astype(np.float64)))
            spacing.extend([step] * count)
            segment_chain.extend([chain[group[0]]] * count)
        allowed = chain[:, None] == np.asarray(segment_chain)[None, :]
        if cross_chain:
            allowed[:] = True

        def f32(array):
            return torch.tensor(np.array(array), dtype=torch.float32)

        self.register_buffer("reference", f32(reference))
        atom_residue = torch.tensor(np.array(residue_index), dtype=torch.long)
        self.register_buffer("residue_index", atom_residue)
        self.register_buffer("residue_centers", f32(residue_centers))
        self.register_buffer("positions", torch.arange(n_residues, dtype=torch.float32), False)
        self.register_buffer("initial_means", f32(mean0), False)
        self.register_buffer("spacing", f32(spacing), False)
        self.register_buffer("allowed", torch.as_tensor(allowed), False)

        # Posterior N(ν, β²) of the standardised mixture parameters, one per segment.
        for name in ("mean", "width", "weight"):
            setattr(self, f"{name}_nu", nn.Parameter(torch.zeros(n_segments)))
            setattr(self, f"{name}_log_beta", nn.Parameter(torch.full((n_segments,), -4.0)))

        layers: list[nn.Module] = []
        width = self.latent_dim
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU()]
            width = int(size)
        last = nn.Linear(width, 6 * n_segments)
        # At z = 0, v = 0 and t = 0 for every segment (the identity). Zero weights too would
        # make z = 0 a saddle with the encoder's zero-started latent head: each gets no
        # gradient until the other moves, an escape whose time grows as 1/SNR².
        if decoder_init > 0:  # (else no draw: the random stream stays as it was)
            nn.init.normal_(last.weight, std=float(decoder_init) / np.sqrt(width))
        else:
            nn.init.zeros_(last.weight)
        with torch.no_grad():
            hidden_at_zero = nn.Sequential(*layers)(torch.zeros(self.latent_dim))
            last.bias.copy_(-(last.weight @ hidden_at_zero))
        self.decoder = nn.Sequential(*layers, last)

        bonds = consecutive_pairs(residue_chain, residue_centers)
        bonds_t = torch.as_tensor(bonds, dtype=torch.long)
        self.register_buffer("bond_pairs", bonds_t, False)
        # Same safe formula as the loss, so the reference scores exactly 0.
        self.register_buffer("bond_lengths", pair_distances(self.residue_centers, bonds_t), False)
        clash_pairs = np.zeros((0, 2), dtype=np.int64)
        if self.clash_weight > 0:
            clash_pairs = clash_candidates(residue_chain, n_residues, residue_centers)
        self.register_buffer("clash_pairs", torch.as_tensor(clash_pairs, dtype=torch.long), False)

    def parameter_groups(self, lr: float) -> list[dict]:
        """The decoder at ``lr``; the mixture's posterior at ``segmentation_lr`` (or ``lr``)."""
        mixture = [p for name, p in self.named_parameters() if not name.startswith("decoder.")]
        return [
            {"name": "decoder", "params": list(self.decoder.parameters()), "lr": lr},
            {"name": "segmentation", "params": mixture, "lr": self.segmentation_lr or lr},
        ]

    @classmethod
    def from_model(
        cls, model: AtomicModel, latent_dim: int, n_segments: int, **kwargs
    ) -> SegmentDeformation:
        """Segments of an ``AtomicModel``; residue centres are Cα, else the residue centroid."""
        coords = np.asarray(model.coords, dtype=np.float64)
        counts = np.bincount(model.residue_index, minlength=model.n_residues)
        centers = np.zeros((model.n_residues, 3))
        np.add.at(centers, model.residue_index, coords)
        centers /= np.maximum(counts, 1)[:, None]
        has_ca = model.ca_index >= 0
        centers[has_ca] = coords[model.ca_index[has_ca]]
        return cls(
            reference=coords,
            residue_index=model.residue_index,
            residue_chain=model.residue_chain_ids,
            residue_centers=centers,
            latent_dim=latent_dim,
            n_segments=n_segments,
            **kwargs,
        )

    # ---- segmentation -------------------------------------------------------------------

    def _posterior(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{name}_nu"), getattr(self, f"{name}_log_beta")

    def _standardised(self, sample: bool) -> dict[str, torch.Tensor]:
        """ε per mixture parameter (M,): a reparameterised draw, or the posterior mean ν."""
        out = {}
        for name in ("mean", "width", "weight"):
            nu, log_beta = self._posterior(name)
            out[name] = nu + torch.exp(log_beta) * torch.randn_like(nu) if sample else nu
        return out

    def gmm_parameters(
        self, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture means μ, widths σ (residues), logits α, each (M,); posterior mean unless
        ``sample``."""
        eps = self._standardised(sample)
        means = self.initial_means + self.spacing * eps["mean"]
        widths = 0.5 * self.spacing * (F.elu(eps["width"]) + 1.0) + WIDTH_FLOOR
        return means, widths, eps["weight"]

    def _membership_of(
        self, means: torch.Tensor, widths: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        """G (R, M), eq. 6, as a softmax of τ·(log φ + log π) over the allowed segments."""
        score = (self.positions[:, None] - means[None, :]) / widths[None, :]
        score = score.clamp(-MAX_STANDARD_SCORE, MAX_STANDARD_SCORE)
        # log φ up to the constant −log √(2π), which the softmax cancels.
        log_phi = -0.5 * score * score - torch.log(widths)[None, :]
        log_pi = torch.log_softmax(logits, 0)[None, :]
        tempered = (self.temperature * (log_phi + log_pi)).clamp(min=MIN_LOGIT)
        # Other chains' segments get −inf; every residue keeps ≥ 1 finite logit, so no NaN.
        tempered = tempered.masked_fill(~self.allowed, float("-inf"))
        return torch.softmax(tempered, dim=1)

    def membership(self, sample: bool = False) -> torch.Tensor:
        """G (R, M): membership of each residue in each segment, rows summing to 1.

        The posterior-mean segmentation unless ``sample`` (a draw from the posterior).
        """
        return self._membership_of(*self.gmm_parameters(sample))

    def segment_of_residue(self) -> np.ndarray:
        """(R,) int, the segment each residue belongs to most (posterior mean)."""
        with torch.no_grad():
            return self.membership().argmax(1).cpu().numpy()

    def kl_divergence(self) -> torch.Tensor:
        """Σ KL(N(ν, β²) || N(0, 1)) over the 3·M standardised mixture parameters (nats)."""
        total = self.mean_nu.new_zeros(())
        for name in ("mean", "width", "weight"):
            nu, log_beta = self._posterior(name)
            total = total + (0.5 * (torch.exp(2 * log_beta) + nu * nu - 1.0) - log_beta).sum()
        return total

    # ---- motion -------------------------------------------------------------------------

    def _segment_centers(self, membership: torch.Tensor) -> torch.Tensor:
        """(M, 3) Å: Σ_i G_im x̄_i / Σ_i G_im; an empty segment falls back to the centroid."""
        centroid = self.residue_centers.mean(0)
        weighted = membership.T @ self.residue_centers + CENTER_EPS * centroid
        return weighted / (membership.sum(0) + CENTER_EPS)[:, None]

    def _decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latents (B, L) -> quaternion vector parts v (B, M, 3), translations (B, M, 3) Å."""
        out = self.decoder(latents).view(latents.shape[0], self.n_segments, 6)
        return out[..., :3], self.translation_scale * out[..., 3:]

    def _residue_affines(
        self, latents: torch.Tensor, membership: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per residue: x -> A x + b, A (B, R, 3, 3), b (B, R, 3) Å."""
        v, translations = self._decode(latents)
        omega, angle, small = _rotation_vectors(v)  # (B, M, 3), (B, M), (B, M)
        skew = geometry.skew(omega)  # (B, M, 3, 3)
        skew2 = skew @ skew
        centers = self._segment_centers(membership)  # (M, 3)
        k_c = (skew @ centers[..., None])[..., 0]  # (B, M, 3)
        k2_c = (skew2 @ centers[..., None])[..., 0]
        # segment-major (M, B, R) from here: contiguous per-segment slices
        fraction, angle, small = membership.T[:, None], angle.T[..., None], small.T[..., None]
        f1, f2 = _rodrigues_coefficients(fraction, angle, small)  # (M, B, R)
        # About the segment's centre c: R (x − c) + c = R x + (c − R c) = R x − (f1 K c + f2 K² c)
        k_c, k2_c = k_c.permute(2, 1, 0)[..., None], k2_c.permute(2, 1, 0)[..., None]
        offsets = tuple(-(f1 * k_c[i] + f2 * k2_c[i]) for i in range(3))
        # R_m as a unit quaternion: (cos(Gδ/2), sin(Gδ/2)/δ · ω), equal to I + f1 K + f2 K²
        safe = torch.where(small, torch.ones_like(angle), angle)
        w = torch.cos(0.5 * fraction * angle)
        scale = torch.where(small, 0.5 * fraction, torch.sin(0.5 * fraction * safe) / safe)
        vector = tuple(scale * omega_i.T[..., None] for omega_i in omega.unbind(-1))
        rotation, offset = _compose_quaternions(w, vector, offsets)
        offset = offset + torch.einsum("rm,bmc->brc", membership, translations)
        return rotation, offset

    def transforms(self, latents: torch.Tensor) -> SegmentTransforms:
        """The per-segment rigid motions of ``latents`` (B, L), for interpretation."""
        self.check_latents(latents)
        v, translations = self._decode(latents)
        omega, angle, small = _rotation_vectors(v)
        skew = geometry.skew(omega)
        f1, f2 = _rodrigues_coefficients(torch.ones_like(angle), angle, small)
        eye = torch.eye(3, dtype=omega.dtype, device=omega.device)
        rotations = eye + f1[..., None, None] * skew + f2[..., None, None] * (skew @ skew)
        safe = torch.where(small, torch.ones_like(angle), angle)
        axes = torch.where(small[..., None], torch.zeros_like(omega), omega / safe[..., None])
        centers = self._segment_centers(self.membership())
        return SegmentTransforms(rotations, angle, axes, translations, centers)

    def deform(self, latents: torch.Tensor) -> Deformed:
        """``latents`` (B, L) -> coords (B, atoms, 3) Å and the weighted regularization."""
        self.check_latents(latents)
        membership = self.membership(sample=self.training)
        rotation, offset = self._residue_affines(latents, membership)
        # Gather per atom: B·atoms·9 work, independent of the number of segments.
        coords = (
            torch.einsum("bnij,nj->bni", rotation[:, self.residue_index], self.reference)
            + offset[:, self.residue_index]
        )
        regularization: dict[str, torch.Tensor] = {}
        if self.segmentation_kl_weight > 0:
            regularization["segmentation_kl"] = self.segmentation_kl_weight * self.kl_divergence()
        if self.continuity_weight > 0 or self.clash_weight > 0:
            centers = torch.einsum("brij,rj->bri", rotation, self.residue_centers) + offset
            if self.continuity_weight > 0:
                regularization["continuity"] = self.continuity_weight * continuity_loss(
                    centers, self.bond_pairs, self.bond_lengths
                )
            if self.clash_weight > 0:
                regularization["clash"] = self.clash_weight * clash_loss(
                    centers, self.clash_pairs, self.clash_distance
                )
        return Deformed(coords, regularization)

"""AtomVAE's deformation (seed 002): one rigid frame update per residue from a ResNet.

A conformation latent z (d) goes through a residual network (``FrameDecoder``: a linear
layer to ``width``, ``blocks`` blocks x + W2 leaky_relu(W1 LN(x)) with W2 zero-initialised,
then layer norm and a linear layer to the ``representation``, 512 in the seed) and a final
linear layer to 9 numbers per residue: a translation t (3, times ``translation_scale`` Å) and
two vectors v1, v2 (3 each, times ``rotation_scale``) that Gram–Schmidt turns into a rotation
ΔR = gram_schmidt(e_x + v1, e_y + v2), so that zero output is the identity. The update is
applied to the residue's backbone frame (``structure.frames``) in that frame, as AlphaFold
composes frames: R = R₀ ΔR, origin = o₀ + R₀ t, and every atom of the residue keeps its
local coordinates, x = origin + R ℓ with ℓ = R₀ᵀ (x₀ − o₀): the residue moves rigidly.

Its regularisation (weighted, averaged over samples) is the seed's:

- ``continuity``: mean squared deviation (Å²) of the peptide bonds C(i)–N(i+1) and the
  consecutive Cα(i)–Cα(i+1) distances from the reference's, over residue pairs bonded in
  the reference (same chain, Cα–Cα < 4.2 Å: chain breaks and gaps are excluded);
- ``centering``: squared distance (Å²) of the model's centroid from the reference's, so that
  global translations are left to the pose.

The decoder's final layer starts at zero (the reference structure), the rest with the
seed's truncated normal scaled by 1/√fan_in. The decoder's representation of z is also what
AtomVAE's pose posterior is conditioned on (``represent``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cryomotion.deform.base import Deformation, Deformed
from cryomotion.deform.restraints import consecutive_pairs, pair_distances
from cryomotion.geometry.rotations import gram_schmidt
from cryomotion.imaging.scatterers import Scatterers
from cryomotion.structure.frames import backbone_frames, local_coordinates
from cryomotion.structure.model import AtomicModel

IDENTITY_SIX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # gram_schmidt of this is the identity


def truncated_normal_(linear: nn.Linear) -> nn.Linear:
    """The seed's initialisation: weights N(0, 1/fan_in) truncated at two standard
    deviations, zero bias."""
    std = 1.0 / math.sqrt(linear.in_features)
    nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(linear.bias)
    return linear


class ResidualBlock(nn.Module):
    """x + W2 leaky_relu(W1 LN(x)), W2 zero-initialised (the block starts as the identity)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = truncated_normal_(nn.Linear(width, width))
        self.outer = nn.Linear(width, width)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(F.leaky_relu(self.inner(self.norm(x))))


class FrameDecoder(nn.Module):
    """z (B, d) -> representation (B, representation) -> frame updates (B, R, 9)."""

    def __init__(
        self,
        latent_dim: int,
        n_residues: int,
        width: int = 256,
        blocks: int = 5,
        representation: int = 512,
    ):
        super().__init__()
        self.embed = truncated_normal_(nn.Linear(max(latent_dim, 1), width))
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.norm = nn.LayerNorm(width)
        self.project = truncated_normal_(nn.Linear(width, representation))
        self.frames = nn.Linear(representation, 9 * n_residues)
        nn.init.zeros_(self.frames.weight)
        nn.init.zeros_(self.frames.bias)
        self.latent_dim = latent_dim
        self.n_residues = n_residues
        self.representation = representation

    def represent(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., representation)."""
        if self.latent_dim == 0:  # no conformation latent: a constant input
            latents = latents.new_zeros(latents.shape[:-1] + (1,))
        return self.project(self.norm(self.blocks(self.embed(latents))))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., R, 9) frame updates (translation, v1, v2)."""
        out = self.frames(self.represent(latents))
        return out.reshape(*out.shape[:-1], self.n_residues, 9)


def frame_updates(raw: torch.Tensor, translation_scale: float, rotation_scale: float):
    """Raw decoder output (..., R, 9) -> translations (..., R, 3) Å and rotations
    (..., R, 3, 3); zero output gives zero and the identity."""
    identity = raw.new_tensor(IDENTITY_SIX)
    rotations = gram_schmidt(identity + rotation_scale * raw[..., 3:9])
    return translation_scale * raw[..., :3], rotations


class ResidueFrameDeformation(Deformation):
    """Latents (B, d) -> atoms (B, atoms, 3) Å by rigid per-residue frame updates (module
    docstring). ``coarse``: the renderer draws one Gaussian bead of std ``bead_sigma`` Å per
    residue at its Cα (``scatterers``) instead of every atom."""

    def __init__(
        self,
        reference: AtomicModel,
        latent_dim: int,
        width: int = 256,
        blocks: int = 5,
        representation: int = 512,
        translation_scale: float = 1.0,
        rotation_scale: float = 1.0,
        continuity_weight: float = 0.01,
        centering_weight: float = 0.1,
        coarse: bool = False,
        bead_sigma: float = 2.0,
    ):
        super().__init__()
        self.reference_model = reference
        self.latent_dim = int(latent_dim)
        self.n_atoms = reference.n_atoms
        self.n_residues = reference.n_residues
        self.translation_scale = float(translation_scale)
        self.rotation_scale = float(rotation_scale)
        self.continuity_weight = float(continuity_weight)
        self.centering_weight = float(centering_weight)
        self.coarse = bool(coarse)
        self.bead_sigma = float(bead_sigma)
        self.decoder = FrameDecoder(latent_dim, self.n_residues, width, blocks, representation)

        frames = backbone_frames(reference)
        local = local_coordinates(reference, frames)
        # atoms padded per residue (R, M, 3), so that the update is one batched product
        residue = reference.residue_index
        first = reference.residue_first_atom
        slot = np.arange(reference.n_atoms) - first[residue]
        width_m = int(slot.max()) + 1 if reference.n_atoms else 1
        padded = np.zeros((self.n_residues, width_m, 3))
        padded[residue, slot] = local
        f32 = dict(dtype=torch.float32)
        self.register_buffer("reference", torch.as_tensor(np.array(reference.coords), **f32))
        self.register_buffer("local", torch.as_tensor(padded, **f32))
        self.register_buffer("padded_index", torch.as_tensor(residue * width_m + slot))
        self.register_buffer("origins", torch.as_tensor(frames.origins, **f32))
        self.register_buffer("axes", torch.as_tensor(frames.rotations, **f32))
        self.register_buffer("centroid", torch.as_tensor(reference.coords.mean(0), **f32))

        # continuity: Cα(i)–Cα(i+1) and C(i)–N(i+1) of the pairs bonded in the reference
        with_ca = frames.ca_index >= 0
        centers = np.where(with_ca[:, None], reference.coords[frames.ca_index], frames.origins)
        pairs = consecutive_pairs(reference.residue_chain_ids, centers)
        pairs = pairs[with_ca[pairs[:, 0]] & with_ca[pairs[:, 1]]]
        ca_pairs = np.stack([frames.ca_index[pairs[:, 0]], frames.ca_index[pairs[:, 1]]], 1)
        peptide = (frames.c_index[pairs[:, 0]] >= 0) & (frames.n_index[pairs[:, 1]] >= 0)
        cn_pairs = np.stack(
            [frames.c_index[pairs[peptide, 0]], frames.n_index[pairs[peptide, 1]]], 1
        )
        bond_pairs = np.concatenate([ca_pairs, cn_pairs]).reshape(-1, 2).astype(np.int64)
        bond_pairs_t = torch.as_tensor(bond_pairs)
        self.register_buffer("bond_pairs", bond_pairs_t)
        self.register_buffer(
            "bond_lengths", pair_distances(self.reference.double(), bond_pairs_t).float()
        )

    def scatterers(self) -> Scatterers | None:
        """What the renderer draws: one bead per residue (``coarse``), or None: every atom
        with its element's form factor (``Deformation.scatterers``)."""
        if self.coarse:
            return Scatterers.residue_beads(self.reference_model, self.bead_sigma)
        return None

    def frames(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latents (B, d) -> the updates' translations (B, R, 3) Å and rotations (B, R, 3, 3)."""
        return frame_updates(self.decoder(latents), self.translation_scale, self.rotation_scale)

    def apply_frames(self, translations: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """Frame updates (B, R, 3) Å, (B, R, 3, 3) -> atoms (B, atoms, 3) Å (module docstring)."""
        axes = self.axes.to(rotations.dtype)
        new_axes = axes @ rotations  # R₀ ΔR
        new_origins = self.origins + torch.einsum("rij,brj->bri", axes, translations)
        moved = torch.einsum("brij,rmj->brmi", new_axes, self.local.to(rotations.dtype))
        moved = moved + new_origins[:, :, None, :]
        return moved.flatten(1, 2).index_select(1, self.padded_index)

    def represent(self, latents: torch.Tensor) -> torch.Tensor:
        """The decoder's representation of latents (..., d) -> (..., representation)."""
        return self.decoder.represent(latents)

    def regularization(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted continuity and centering terms of atoms (B, atoms, 3) Å."""
        terms = {}
        if self.continuity_weight:
            if len(self.bond_pairs):
                stretch = pair_distances(points, self.bond_pairs) - self.bond_lengths
                continuity = stretch.square().mean()
            else:
                continuity = (points * 0.0).sum()
            terms["continuity"] = self.continuity_weight * continuity
        if self.centering_weight:
            drift = points.mean(dim=-2) - self.centroid
            terms["centering"] = self.centering_weight * drift.square().sum(-1).mean()
        return terms

    def deform(self, latents: torch.Tensor) -> Deformed:
        self.check_latents(latents)
        translations, rotations = self.frames(latents.float())
        points = self.apply_frames(translations, rotations)
        return Deformed(points, self.regularization(points))

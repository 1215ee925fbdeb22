"""The composed image-formation model: pose → projected form factors → shift → CTF.

Conventions (project-wide, see docs/conventions.md)
---------------------------------------------------
* Coordinates in Å in the model frame. A pose R (B, 3, 3) maps them into the microscope frame,
  x_mic = R (x - c), c the rotation centre (3,) Å; R is RELION's Euler matrix
  (``Euler_angles2matrix(rot, tilt, psi)``). The image is the integral of the potential along
  the microscope z axis.
* Default rotation centre: the model lives in the consensus map's frame (coordinates start at
  the map's corner), so c = (box//2)·pixel_size on each axis.
* Images are (B, D, D) indexed [row = y, col = x]; pixel (i, j) sits at
  x = (j - D//2)·pixel_size, y = (i - D//2)·pixel_size, so the rotation centre projects onto
  pixel (D//2, D//2).
* Shifts s (B, 2) Å as (x, y): the image is the projection translated by +s (RELION's
  rlnOriginXAngst/YAngst). A translation is a Fourier phase exp(-2πi q·s); it is applied to
  the atoms' in-plane positions before the analytic transform, which is the same phase.
* CTF (B, 8) in ``CTF_FIELDS`` order, RELION's sign (CTF(0) = +amplitude contrast), multiplied
  on the half-plane spectrum.
* Pixel values are the projected electrostatic potential per Å² (Å⁻¹ with f_e in Å): for an
  atom well inside the box and no CTF, Σ pixels × pixel_size² = f_e(0) = Σ_i a_i. The image is
  band-limited at Nyquist (see ``cryomotion.imaging.projection``) and periodic over the box.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import compute_ctf
from cryomotion.imaging.fourier import fft_frequencies
from cryomotion.imaging.projection import gram_weights, project_fourier, quadrant_form_factors
from cryomotion.structure.form_factors import scattering_table
from cryomotion.structure.model import AtomicModel


def residue_beads(model: AtomicModel) -> np.ndarray:
    """(residues,) the atom index carrying each residue's bead in coarse rendering: its Cα, or
    for a residue without one (ligand, nucleotide, water) the atom nearest its centroid."""
    beads = model.ca_index.copy()
    missing = beads < 0
    if missing.any():
        counts = np.bincount(model.residue_index, minlength=model.n_residues)
        centroids = (
            np.stack(
                [
                    np.bincount(model.residue_index, model.coords[:, axis], model.n_residues)
                    for axis in range(3)
                ],
                axis=1,
            )
            / np.maximum(counts, 1)[:, None]
        )
        distance = ((model.coords - centroids[model.residue_index]) ** 2).sum(1)
        nearest = np.lexsort((distance, model.residue_index))  # by residue, then distance
        first = np.searchsorted(model.residue_index[nearest], np.arange(model.n_residues))
        beads[missing] = nearest[first[missing]]
    return beads


class AtomRenderer(torch.nn.Module):
    """Batched, differentiable projection images of atoms (module conventions above).

    Parameters
    ----------
    form_factor_a, form_factor_b : (T, G) coefficients of the scatterer types' form factors
        f_t(s) = Σ_i a_i exp(-b_i s²), a in Å, b in Å², s = |q|/2 (G = 5 for atoms).
    type_index : (S,) type of each scatterer (atoms, or beads in coarse mode).
    box : image size D in pixels.
    pixel_size : Å/px.
    rotation_center : (3,) Å; default (box//2)·pixel_size on each axis.
    gather_index : optional (S,) index of the input atom whose coordinates carry each
        scatterer (coarse mode: each residue's Cα); default scatterer s is atom s.
    weights : optional (S,) fixed amplitude of each scatterer (coarse mode: the residue's
        summed f_e(0)); default 1.

    ``forward`` takes coordinates of the full model's atoms and returns real images;
    ``fourier`` returns their half-plane spectra. Buffers (float64, cast per call) follow
    ``.to(device)``; the computation runs in the dtype and on the device of the input
    coordinates, so float64 inputs give float64-accurate images.
    """

    def __init__(
        self,
        form_factor_a,
        form_factor_b,
        type_index,
        box: int,
        pixel_size: float,
        rotation_center=None,
        gather_index=None,
        weights=None,
    ):
        super().__init__()
        if int(box) < 2 or not pixel_size > 0:
            raise InputError(
                f"box {box} px, pixel size {pixel_size} Å: expected box ≥ 2 and pixel size > 0"
            )
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        a = torch.as_tensor(np.asarray(form_factor_a, dtype=np.float64))
        b = torch.as_tensor(np.asarray(form_factor_b, dtype=np.float64))
        types = np.asarray(type_index, dtype=np.int64).reshape(-1)
        if a.dim() != 2 or a.shape != b.shape:
            raise ValueError(
                f"form factor a {tuple(a.shape)} and b {tuple(b.shape)}: expected (T, G)"
            )
        if len(types) == 0:
            raise InputError("nothing to render: no scatterers")
        if types.min() < 0 or types.max() >= a.shape[0]:
            raise ValueError(f"type_index outside 0…{a.shape[0] - 1}")
        if (b < 0).any():
            raise InputError("form factor b coefficients must be non-negative (Å²)")
        if gather_index is None:
            gather = np.arange(len(types))
            self.n_atoms: int | None = len(types)
        else:
            gather = np.asarray(gather_index, dtype=np.int64).reshape(-1)
            if gather.shape != types.shape or gather.min() < 0:
                raise ValueError("gather_index must hold one non-negative atom index per scatterer")
            self.n_atoms = None
        self.min_atoms = int(gather.max()) + 1
        # Scatterers sorted by type: one table product per type.
        order = np.argsort(types, kind="stable")
        counts = np.bincount(types, minlength=a.shape[0])
        self.type_offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(counts)]))
        self.register_buffer("order", torch.as_tensor(order), persistent=False)
        self.register_buffer("source_atom", torch.as_tensor(gather[order]), persistent=False)
        if weights is None:
            self.register_buffer("scatterer_weights", None, persistent=False)
        else:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
            if w.shape != types.shape:
                raise ValueError(f"weights {w.shape}: expected one per scatterer ({len(types)},)")
            self.register_buffer(
                "scatterer_weights",
                torch.as_tensor(w[order]),
                persistent=False,
            )
        quadrant = quadrant_form_factors(a, b, self.box, self.pixel_size)
        self.register_buffer("gram_weights", gram_weights(quadrant, self.box), persistent=False)
        if rotation_center is None:
            rotation_center = [(self.box // 2) * self.pixel_size] * 3
        center = torch.as_tensor(np.asarray(rotation_center, dtype=np.float64))
        if center.shape != (3,):
            raise InputError(f"rotation centre {tuple(center.shape)}: expected 3 coordinates in Å")
        self.register_buffer("rotation_center", center, persistent=False)
        freq_y, freq_x = fft_frequencies(self.box, self.pixel_size, rfft=True, dtype=torch.float64)
        self.register_buffer("freq_y", freq_y, persistent=False)
        self.register_buffer("freq_x", freq_x, persistent=False)

    @classmethod
    def from_model(
        cls,
        model: AtomicModel,
        box: int,
        pixel_size: float,
        rotation_center=None,
        coarse: bool = False,
        bead_sigma: float = 2.0,
    ) -> AtomRenderer:
        """A renderer for ``model``'s atoms with their elements' form factors.

        ``coarse``: one Gaussian bead per residue, at its Cα (``residue_beads``), a normalized
        3-D Gaussian of standard deviation ``bead_sigma`` Å (form factor
        A exp(-2π²σ²|q|²)) with amplitude A = the residue's summed f_e(0) over its atoms, as
        cryoSPHERE's density model. ``forward`` still takes all atoms' coordinates.
        """
        if model.n_atoms == 0:
            raise InputError(f"model {model.source or ''} has no atoms to render")
        _, a, b, type_index = scattering_table(model.elements)
        if not coarse:
            return cls(a, b, type_index, box, pixel_size, rotation_center)
        if not bead_sigma > 0:
            raise InputError(f"bead sigma {bead_sigma} Å: expected a positive width")
        totals = np.bincount(
            model.residue_index, weights=a.sum(1)[type_index], minlength=model.n_residues
        )
        bead_a = np.array([[1.0, 0, 0, 0, 0]])
        bead_b = np.array([[8 * math.pi**2 * bead_sigma**2, 0, 0, 0, 0]])
        return cls(
            bead_a,
            bead_b,
            np.zeros(model.n_residues, dtype=np.int64),
            box,
            pixel_size,
            rotation_center,
            gather_index=residue_beads(model),
            weights=totals,
        )

    @property
    def n_scatterers(self) -> int:
        return int(self.source_atom.shape[0])

    def positions(
        self, coords: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, S, 2) in-plane scatterer positions in pixels from pixel 0, as (x, y), type-sorted.

        coords (B, atoms, 3) or (atoms, 3) Å in the model frame; rotations (B, 3, 3);
        shifts (B, 2) Å or None.
        """
        if rotations.dim() != 3 or rotations.shape[-2:] != (3, 3):
            raise ValueError(f"rotations must be (B, 3, 3), got {tuple(rotations.shape)}")
        if coords.shape[-1] != 3 or coords.dim() not in (2, 3):
            raise ValueError(
                f"coords must be (B, atoms, 3) or (atoms, 3), got {tuple(coords.shape)}"
            )
        batch = rotations.shape[0]
        if coords.dim() == 3 and coords.shape[0] != batch:
            raise ValueError(f"coords hold {coords.shape[0]} models for {batch} rotations")
        if shifts is not None and shifts.shape != (batch, 2):
            raise ValueError(f"shifts must be ({batch}, 2) Å, got {tuple(shifts.shape)}")
        n_atoms = coords.shape[-2]
        if (self.n_atoms is not None and n_atoms != self.n_atoms) or n_atoms < self.min_atoms:
            expected = self.n_atoms if self.n_atoms is not None else f"≥ {self.min_atoms}"
            raise ValueError(f"coords hold {n_atoms} atoms, the renderer expects {expected}")
        dtype = coords.dtype
        centered = coords.index_select(-2, self.source_atom) - self.rotation_center.to(dtype)
        in_plane = rotations.to(dtype)[:, :2, :]  # rows x, y of x_mic = R (x - c)
        if centered.dim() == 2:
            xy = torch.einsum("bij,sj->bsi", in_plane, centered)
        else:
            xy = torch.einsum("bij,bsj->bsi", in_plane, centered)
        if shifts is not None:
            xy = xy + shifts.to(dtype)[:, None, :]
        return xy / self.pixel_size + (self.box // 2)

    def fourier(
        self,
        coords: torch.Tensor,
        rotations: torch.Tensor,
        shifts: torch.Tensor | None = None,
        ctf: torch.Tensor | None = None,
        amplitudes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Half-plane spectra, complex (B, box, box//2 + 1) in ``torch.fft.rfft2`` layout
        (origin phase included), such that ``torch.fft.irfft2(spectra, s=(box, box))`` is the
        image of ``forward``. Without CTF it equals ``rfft2`` of that image exactly.

        amplitudes : optional (S,) or (B, S) per-scatterer multipliers in the scatterers'
            input order (atoms, or residues in coarse mode), differentiable (e.g. learnable
            pseudo-atom amplitudes); they multiply the fixed ``weights``.
        """
        positions = self.positions(coords, rotations, shifts)
        scale = self.scatterer_weights
        if amplitudes is not None:
            amplitudes = amplitudes.to(coords.dtype).index_select(-1, self.order)
            scale = amplitudes if scale is None else amplitudes * scale.to(coords.dtype)
        spectra = project_fourier(positions, self.gram_weights, self.type_offsets, self.box, scale)
        if ctf is not None:
            if ctf.shape != (positions.shape[0], 8):
                raise ValueError(f"ctf must be ({positions.shape[0]}, 8), got {tuple(ctf.shape)}")
            spectra = spectra * compute_ctf(
                ctf.to(coords.dtype), self.freq_x.to(coords.dtype), self.freq_y.to(coords.dtype)
            )
        return spectra

    def forward(
        self,
        coords: torch.Tensor,
        rotations: torch.Tensor,
        shifts: torch.Tensor | None = None,
        ctf: torch.Tensor | None = None,
        amplitudes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Images (B, box, box) of the projected potential (Å⁻¹ per pixel).

        coords : (B, atoms, 3) or (atoms, 3) Å in the model frame — always the full model's
            atoms (in coarse mode the renderer takes the beads' atoms itself).
        rotations : (B, 3, 3) poses, x_mic = R (x - rotation_center).
        shifts : (B, 2) Å as (x, y), image translated by +s; None for none.
        ctf : (B, 8) in ``CTF_FIELDS`` order; None for a perfect microscope.
        amplitudes : see ``fourier``.

        Differentiable with respect to coords, rotations, shifts, ctf and amplitudes.
        """
        spectra = self.fourier(coords, rotations, shifts, ctf, amplitudes)
        return torch.fft.irfft2(spectra, s=(self.box, self.box))

    def extra_repr(self) -> str:
        return (
            f"box={self.box}, pixel_size={self.pixel_size}, scatterers={self.n_scatterers}, "
            f"types={len(self.type_offsets) - 1}"
        )

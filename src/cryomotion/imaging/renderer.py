"""The composed image-formation model: pose → projected form factors → shift → CTF.

Conventions (project-wide, see docs/conventions.md)
---------------------------------------------------
* Coordinates in Å in the model frame. A pose R (..., 3, 3) maps them into the microscope
  frame, x_mic = R (x - c), c the rotation centre (3,) Å; R is RELION's Euler matrix
  (``Euler_angles2matrix(rot, tilt, psi)``). The image is the integral of the potential along
  the microscope z axis. Poses travel as ``cryomotion.imaging.pose.Pose`` (rotations,
  shifts) or as the two tensors.
* Default rotation centre: the model lives in the consensus map's frame (coordinates start at
  the map's corner), so c = (box//2)·pixel_size on each axis.
* Images are (..., D, D) indexed [row = y, col = x]; pixel (i, j) sits at
  x = (j - D//2)·pixel_size, y = (i - D//2)·pixel_size, so the rotation centre projects onto
  pixel (D//2, D//2).
* Shifts s (..., 2) Å as (x, y): the image is the projection translated by +s (RELION's
  rlnOriginXAngst/YAngst). A translation is a Fourier phase exp(-2πi q·s); it is applied to
  the atoms' in-plane positions before the analytic transform, which is the same phase.
* CTF (..., 8) in ``CTF_FIELDS`` order, RELION's sign (CTF(0) = +amplitude contrast), multiplied
  on the half-plane spectrum; evaluated once per row given and broadcast over the poses.
* Leading dimensions ``...`` of points, pose, CTF and amplitudes broadcast (torch's rules);
  they are flattened around the projection, which works on (N, S, 2).
* What the points are (atoms, residue beads, Gaussian pseudo-atoms) is a
  ``cryomotion.imaging.scatterers.Scatterers`` value given to the constructor.
* Pixel values are the projected electrostatic potential per Å² (Å⁻¹ with f_e in Å): for an
  atom well inside the box and no CTF, Σ pixels × pixel_size² = f_e(0) = Σ_i a_i. The image is
  band-limited at Nyquist (see ``cryomotion.imaging.projection``) and periodic over the box.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import compute_ctf
from cryomotion.imaging.fourier import fft_frequencies
from cryomotion.imaging.gridding import gridding_weights, predicted_seconds, project_gridding
from cryomotion.imaging.pose import Pose
from cryomotion.imaging.projection import gram_weights, project_fourier, quadrant_form_factors
from cryomotion.imaging.scatterers import Scatterers, residue_beads
from cryomotion.structure.model import AtomicModel

__all__ = ["AtomRenderer", "Pose", "Scatterers", "residue_beads"]

logger = logging.getLogger(__name__)

PROJECTIONS = ("direct", "gridding", "auto")


def _pose_arguments(
    pose: Pose | torch.Tensor, shifts: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(rotations, shifts) from a ``Pose`` or from rotations and shifts given apart."""
    if isinstance(pose, tuple):
        if shifts is not None:
            raise TypeError(
                "a Pose carries its shifts: give ctf, amplitudes and max_frequency by keyword"
            )
        return pose[0], pose[1]
    return pose, shifts


def _broadcast(shapes: list[torch.Size], what: str) -> torch.Size:
    """The broadcast of leading ``shapes``; ValueError naming ``what`` if they do not."""
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            f"{what} have batch shapes {', '.join(str(tuple(s)) for s in shapes)} that do not "
            "broadcast"
        ) from None


class AtomRenderer(torch.nn.Module):
    """Batched, differentiable projection images of atoms (module conventions above).

    Parameters
    ----------
    scatterers : what the points are (``cryomotion.imaging.scatterers.Scatterers``): form
        factors per type, each scatterer's type, which input point carries it (beads) and
        its fixed weight.
    box : image size D in pixels.
    pixel_size : Å/px.
    rotation_center : (3,) Å; default (box//2)·pixel_size on each axis.
    projection : how the spectrum is computed, same result to the accuracy target: "direct"
        (``cryomotion.imaging.projection``, exact sum over atoms and frequencies, cost ~ n D²),
        "gridding" (``cryomotion.imaging.gridding``, non-uniform FFT, relative error ~1e-4,
        cost ~ 25 n + T (2D)² log D) or "auto" (default): the one the cost model
        ``gridding.predicted_seconds`` predicts faster for this many scatterers, types and
        this box, except that float64 inputs keep the exact direct sum; the choice and its
        reason are logged once (INFO).

    ``forward`` takes the points (atoms; in coarse mode still all atoms) and returns real
    images; ``fourier`` returns their half-plane spectra. Both accept leading batch dimensions
    that broadcast (see ``fourier``). Buffers (float64, cast per call) follow ``.to(device)``;
    the computation runs in the dtype and on the device of the input coordinates, so float64
    inputs give float64-accurate images.
    """

    def __init__(
        self,
        scatterers: Scatterers,
        box: int,
        pixel_size: float,
        rotation_center=None,
        projection: str = "auto",
    ):
        super().__init__()
        if not isinstance(scatterers, Scatterers):
            raise TypeError(
                f"AtomRenderer takes a Scatterers value, got {type(scatterers).__name__} "
                "(build one with Scatterers(a, b, type_index, ...) or Scatterers.atoms(model))"
            )
        if int(box) < 2 or not pixel_size > 0:
            raise InputError(
                f"box {box} px, pixel size {pixel_size} Å: expected box ≥ 2 and pixel size > 0"
            )
        self.scatterers = scatterers
        self.box = int(box)
        self.pixel_size = float(pixel_size)
        a = torch.as_tensor(scatterers.form_factor_a)
        b = torch.as_tensor(scatterers.form_factor_b)
        types = scatterers.type_index
        if scatterers.gather_index is None:
            gather = np.arange(len(types))
            self.n_atoms: int | None = len(types)
        else:
            gather = scatterers.gather_index
            self.n_atoms = None
        self.min_atoms = int(gather.max()) + 1
        # Scatterers sorted by type: one table product per type.
        order = np.argsort(types, kind="stable")
        counts = np.bincount(types, minlength=a.shape[0])
        self.type_offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(counts)]))
        self.register_buffer("order", torch.as_tensor(order), persistent=False)
        self.register_buffer("source_atom", torch.as_tensor(gather[order]), persistent=False)
        if scatterers.weights is None:
            self.register_buffer("scatterer_weights", None, persistent=False)
        else:
            self.register_buffer(
                "scatterer_weights",
                torch.as_tensor(scatterers.weights[order]),
                persistent=False,
            )
        if projection not in PROJECTIONS:
            raise InputError(f"projection {projection!r}: expected one of {', '.join(PROJECTIONS)}")
        self.requested_projection = projection  # "auto" is decided again at another box
        self.projection = self._choose_projection(projection, a.shape[0])
        # "auto" keeps float64 inputs exact: they take the direct sum whatever the size.
        self.exact_float64 = projection == "auto"
        quadrant = quadrant_form_factors(a, b, self.box, self.pixel_size)
        direct = None
        if self.projection == "direct" or self.exact_float64:
            direct = gram_weights(quadrant, self.box)
        gridding = None
        if self.projection == "gridding":
            gridding = gridding_weights(quadrant, self.box)
        self.register_buffer(
            "scatterer_types", torch.as_tensor(np.sort(types, kind="stable")), persistent=False
        )
        self.register_buffer("gram_weights", direct, persistent=False)
        self.register_buffer("gridding_weights", gridding, persistent=False)
        if rotation_center is None:
            rotation_center = [(self.box // 2) * self.pixel_size] * 3
        center = torch.as_tensor(np.asarray(rotation_center, dtype=np.float64))
        if center.shape != (3,):
            raise InputError(f"rotation centre {tuple(center.shape)}: expected 3 coordinates in Å")
        self.register_buffer("rotation_center", center, persistent=False)
        freq_y, freq_x = fft_frequencies(self.box, self.pixel_size, rfft=True, dtype=torch.float64)
        self.register_buffer("freq_y", freq_y, persistent=False)
        self.register_buffer("freq_x", freq_x, persistent=False)

    def at_box(self, box: int, pixel_size: float) -> AtomRenderer:
        """The same scatterers, rotation centre (Å) and choice of projection ("auto" chosen
        again for the new grid) drawn on a (box, box) grid of ``pixel_size`` Å: e.g. the
        full images of a run trained on Fourier crops (the pixel values keep their meaning,
        so the two agree below the smaller grid's Nyquist frequency)."""
        center = self.rotation_center.detach().cpu().numpy()
        renderer = type(self)(self.scatterers, box, pixel_size, center, self.requested_projection)
        return renderer.to(self.rotation_center.device)

    def _choose_projection(self, projection: str, n_types: int) -> str:
        """``projection``, or for "auto" the method the cost model predicts faster; logs it."""
        n = self.n_scatterers
        direct = predicted_seconds("direct", n, n_types, self.box)
        gridding = predicted_seconds("gridding", n, n_types, self.box)
        if projection == "auto":
            chosen = "gridding" if gridding < direct else "direct"
            reason = "auto: predicted faster; float64 inputs always direct"
        else:
            chosen, reason = projection, "as asked"
        logger.info(
            "projection %s (%s; %d scatterers, %d types, %d px: predicted forward+backward "
            "%.3g ms/image direct, %.3g ms/image gridding on one CPU core)",
            chosen, reason, n, n_types, self.box, 1e3 * direct, 1e3 * gridding,
        )  # fmt: skip
        return chosen

    @classmethod
    def from_model(
        cls,
        model: AtomicModel,
        box: int,
        pixel_size: float,
        rotation_center=None,
        coarse: bool = False,
        bead_sigma: float = 2.0,
        projection: str = "auto",
    ) -> AtomRenderer:
        """A renderer for ``model``'s atoms with their elements' form factors
        (``Scatterers.atoms``).

        ``coarse``: one Gaussian bead per residue, at its Cα (``Scatterers.residue_beads``), a
        normalized 3-D Gaussian of standard deviation ``bead_sigma`` Å (form factor
        A exp(-2π²σ²|q|²)) with amplitude A = the residue's summed f_e(0) over its atoms, as
        cryoSPHERE's density model. ``forward`` still takes all atoms' coordinates.
        """
        if coarse:
            scatterers = Scatterers.residue_beads(model, bead_sigma)
        else:
            scatterers = Scatterers.atoms(model)
        return cls(scatterers, box, pixel_size, rotation_center, projection)

    @property
    def n_scatterers(self) -> int:
        return int(self.source_atom.shape[0])

    def positions(
        self,
        coords: torch.Tensor,
        pose: Pose | torch.Tensor,
        shifts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(..., S, 2) in-plane scatterer positions in pixels from pixel 0, as (x, y),
        type-sorted; ``...`` the broadcast batch shape of the arguments.

        coords (..., atoms, 3) Å in the model frame ((atoms, 3): shared by every pose);
        ``pose`` a ``Pose`` or rotations (..., 3, 3), then ``shifts`` (..., 2) Å or None.
        """
        rotations, shifts = _pose_arguments(pose, shifts)
        if rotations.dim() < 2 or rotations.shape[-2:] != (3, 3):
            raise ValueError(f"rotations must be (..., 3, 3), got {tuple(rotations.shape)}")
        if coords.dim() < 2 or coords.shape[-1] != 3:
            raise ValueError(
                f"coords must be (..., atoms, 3) or (atoms, 3), got {tuple(coords.shape)}"
            )
        if shifts is not None and (shifts.dim() < 1 or shifts.shape[-1] != 2):
            raise ValueError(f"shifts must be (..., 2) Å, got {tuple(shifts.shape)}")
        n_atoms = coords.shape[-2]
        if (self.n_atoms is not None and n_atoms != self.n_atoms) or n_atoms < self.min_atoms:
            expected = self.n_atoms if self.n_atoms is not None else f"≥ {self.min_atoms}"
            raise ValueError(f"coords hold {n_atoms} atoms, the renderer expects {expected}")
        shapes = [coords.shape[:-2], rotations.shape[:-2]]
        if shifts is not None:
            shapes.append(shifts.shape[:-1])
        batch = _broadcast(shapes, "coords, rotations and shifts")
        dtype = coords.dtype
        centered = coords.index_select(-2, self.source_atom) - self.rotation_center.to(dtype)
        in_plane = rotations.to(dtype)[..., :2, :]  # rows x, y of x_mic = R (x - c)
        if (
            rotations.shape[:-2] == batch
            and len(batch) == 1
            and (coords.dim() == 2 or coords.shape[:-2] == batch)
        ):
            # One batch dimension (today's callers): the products as they always were.
            if centered.dim() == 2:
                xy = torch.einsum("bij,sj->bsi", in_plane, centered)
            else:
                xy = torch.einsum("bij,bsj->bsi", in_plane, centered)
        else:
            xy = torch.matmul(centered, in_plane.transpose(-1, -2))
        if shifts is not None:
            xy = xy + shifts.to(dtype)[..., None, :]
        xy = xy.expand(batch + xy.shape[-2:])
        return xy / self.pixel_size + (self.box // 2)

    def band_mask(self, max_frequency: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """(box, box//2 + 1) 1 where |q| ≤ ``max_frequency`` (1/Å), else 0, rfft2 layout."""
        if not max_frequency > 0:
            raise ValueError(f"max_frequency {max_frequency} 1/Å: expected a positive value")
        q2 = self.freq_x.square() + self.freq_y.square()
        return (q2 <= max_frequency**2).to(dtype)

    def fourier(
        self,
        coords: torch.Tensor,
        pose: Pose | torch.Tensor,
        shifts: torch.Tensor | None = None,
        ctf: torch.Tensor | None = None,
        amplitudes: torch.Tensor | None = None,
        max_frequency: float | None = None,
    ) -> torch.Tensor:
        """Half-plane spectra, complex (..., box, box//2 + 1) in ``torch.fft.rfft2`` layout
        (origin phase included), such that ``torch.fft.irfft2(spectra, s=(box, box))`` is the
        image of ``forward``. Without CTF or band limit it equals ``rfft2`` of that image
        exactly.

        Leading dimensions broadcast: coords (..., atoms, 3), rotations (..., 3, 3), shifts
        (..., 2), ctf (..., 8) and amplitudes (..., S) give spectra over their broadcast
        batch shape ``...``; e.g. coords (B, S1, 1, atoms, 3) against a pose (B, S1, S2) and
        ctf (B, 1, 1, 8) give (B, S1, S2, box, K). The CTF is evaluated once per ctf row given
        (B here), not per sample.

        pose : a ``Pose``, or rotations (..., 3, 3) followed by ``shifts`` (today's positional
            ``renderer(coords, rotations, shifts, ctf)``). With a ``Pose``, leave ``shifts``
            out and give ``ctf`` and the rest by keyword.
        amplitudes : optional (S,) or (..., S) per-scatterer multipliers in the scatterers'
            input order (atoms, or residues in coarse mode), differentiable (e.g. learnable
            pseudo-atom amplitudes); they multiply the fixed ``weights``.
        max_frequency : optional band limit in 1/Å: components with |q| > max_frequency are
            zero (frequency marching).
        """
        positions = self.positions(coords, pose, shifts)
        dtype = coords.dtype
        batch = positions.shape[:-2]
        n = positions.shape[-2]
        scale = self.scatterer_weights
        if amplitudes is not None:
            amplitudes = amplitudes.to(dtype).index_select(-1, self.order)
            scale = amplitudes if scale is None else amplitudes * scale.to(dtype)
            if scale.dim() > 1:
                batch = _broadcast([batch, scale.shape[:-1]], "amplitudes and poses")
                scale = scale.expand(batch + (n,)).reshape(-1, n)
        flat = positions.expand(batch + (n, 2)).reshape(-1, n, 2)
        if self.projection == "direct" or (self.exact_float64 and dtype == torch.float64):
            spectra = project_fourier(flat, self.gram_weights, self.type_offsets, self.box, scale)
        else:
            spectra = project_gridding(
                flat,
                self.gridding_weights,
                self.type_offsets,
                self.box,
                scale,
                type_index=self.scatterer_types,
            )
        spectra = spectra.reshape(batch + spectra.shape[-2:])
        if ctf is not None:
            if ctf.dim() < 1 or ctf.shape[-1] != 8:
                raise ValueError(f"ctf must be (..., 8), got {tuple(ctf.shape)}")
            _broadcast([batch, ctf.shape[:-1]], "ctf and poses")
            transfer = compute_ctf(
                ctf.to(dtype), self.freq_x.to(dtype), self.freq_y.to(dtype)
            )  # (ctf's ..., box, K): once per CTF, broadcast over samples
            if max_frequency is not None:
                transfer = transfer * self.band_mask(max_frequency, dtype)
            spectra = spectra * transfer
        elif max_frequency is not None:
            spectra = spectra * self.band_mask(max_frequency, dtype)
        return spectra

    def forward(
        self,
        coords: torch.Tensor,
        pose: Pose | torch.Tensor,
        shifts: torch.Tensor | None = None,
        ctf: torch.Tensor | None = None,
        amplitudes: torch.Tensor | None = None,
        max_frequency: float | None = None,
    ) -> torch.Tensor:
        """Images (..., box, box) of the projected potential (Å⁻¹ per pixel).

        coords : (..., atoms, 3) or (atoms, 3) Å in the model frame — always the full
            model's atoms (in coarse mode the renderer takes the beads' atoms itself).
        pose : a ``Pose`` (..., ), or rotations (..., 3, 3), x_mic = R (x - rotation_center),
            followed by shifts (..., 2) Å as (x, y), image translated by +s; None for none.
        ctf : (..., 8) in ``CTF_FIELDS`` order; None for a perfect microscope.
        amplitudes, max_frequency : see ``fourier``; leading dimensions broadcast as there.

        Differentiable with respect to coords, rotations, shifts, ctf and amplitudes.
        """
        spectra = self.fourier(coords, pose, shifts, ctf, amplitudes, max_frequency)
        return torch.fft.irfft2(spectra, s=(self.box, self.box))

    def extra_repr(self) -> str:
        return (
            f"box={self.box}, pixel_size={self.pixel_size}, scatterers={self.n_scatterers}, "
            f"types={len(self.type_offsets) - 1}, projection={self.projection}"
        )

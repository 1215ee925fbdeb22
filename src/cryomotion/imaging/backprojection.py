"""Direct Fourier inversion: image spectra inserted into a 3-D Fourier grid, and its adjoint.

Conventions (the renderer's, docs/conventions.md)
-------------------------------------------------
* A volume is (D, D, D) indexed [z, y, x]; voxel (k, j, i) sits at (i, j, k)·pixel_size Å in
  the model frame (``cryomotion.analysis.maps.atomic_potential_map`` with origin 0), so the
  rotation centre c = (D//2)·pixel_size is voxel (D//2, D//2, D//2).
* A pose R maps model coordinates into the microscope frame, x_mic = R (x − c); the image is
  the projection along the microscope z axis, with c on pixel (D//2, D//2), translated by
  +shift (Å, (x, y)) and multiplied by the CTF (RELION's sign) on its spectrum.
* Central-slice theorem in these terms: with the image origin moved to the rotation centre,
  the image's 2-D DFT at integer frequency (k_x, k_y) is pixel_size × the 3-D DFT of the
  volume (origin at c) at the model-frame frequency k_x R[0] + k_y R[1] (R's rows).
* Pixel values are projected potential per Å² and voxel values potential per Å³, so an
  image is pixel_size × the sum of the voxels along z.

Method
------
Insertion (``FourierInserter``) works on a Fourier grid padded ``padding`` times (P = padding·D
points per axis, RELION's default of 2): each image's half-plane spectrum inside the sphere
|k| < D/2 is multiplied by its CTF and by the phase that undoes the shift and centres the
image, and spread onto the 8 nearest grid points with trilinear weights; the CTF² (times
the same weights) is accumulated alongside. Friedel mates are added once at the end
(N(k) + conj N(−k)), so only the half-plane is inserted. The volume is then

    V = gridding_correction · IFFT[ N · d ] / pixel_size,   cropped to D³,

where d is the density compensation of W + ε (Pipe & Menon's iteration, as in RELION:
(W + ε)·d smoothed by a small kernel ≈ 1; plain d = 1/(W + ε) is less accurate near the
origin, where every slice crosses the same grid points), with ε either a constant (a
fraction of the mean weight) or, from two half sets, the
RELION-style SSNR regularisation ε(|k|) = ⟨W²⟩ / (⟨W⟩ · SSNR(|k|)), SSNR = FSC/(1 − FSC)
from the FSC between the two halves' CTF-weighted sums N₁, N₂ on the padded grid (per shell;
see ``ssnr_regularization``). The trilinear kernel multiplies real space by
sinc²(x/P) per axis, which the gridding correction divides out.

``project_volume`` is the matching forward operator (Fourier-slice extraction with
trilinear interpolation on the padded grid, the volume pre-divided by the same sinc²), so
a reconstruction can be re-projected and compared with its images.

All functions are pure torch: they run on the device of their inputs (CPU or CUDA).
"""

from __future__ import annotations

import math

import torch

from cryomotion.errors import InputError
from cryomotion.imaging.ctf import compute_ctf

# FSC values are clamped to this range before conversion into an SSNR.
_FSC_RANGE = (1e-3, 0.999)


def _corner_offsets(device) -> torch.Tensor:
    """(8, 3) the unit-cube corners (x, y, z) of trilinear interpolation."""
    grid = torch.tensor([[i, j, k] for k in (0, 1) for j in (0, 1) for i in (0, 1)])
    return grid.to(device)


class _SliceGeometry:
    """The image half-plane points inserted or extracted: integer frequencies inside the
    sphere |k| < D/2 (Nyquist excluded), their place in the rfft layout, and the weight ½ of
    the k_x = 0 column (whose Friedel mates are in the half-plane as well)."""

    def __init__(self, box: int, device, dtype):
        k_y = torch.fft.fftfreq(box, d=1.0 / box, device=device, dtype=dtype).round()
        k_x = torch.fft.rfftfreq(box, d=1.0 / box, device=device, dtype=dtype).round()
        ky, kx = torch.meshgrid(k_y, k_x, indexing="ij")
        inside = (kx**2 + ky**2 < (box / 2) ** 2).reshape(-1)
        self.flat = torch.nonzero(inside).reshape(-1)  # into the (box·(box//2+1)) rfft layout
        self.kx = kx.reshape(-1)[self.flat]
        self.ky = ky.reshape(-1)[self.flat]
        self.column_weight = torch.where(self.kx == 0, 0.5, 1.0).to(dtype)
        self.box = box

    def phase(self, shifts: torch.Tensor, pixel_size: float) -> torch.Tensor:
        """(B, M) complex exp(−2πi k·(s/pixel_size + D//2)/D): the factor that translates an
        image whose origin is pixel 0 to one translated by +s with its origin at pixel D//2."""
        offset = shifts / pixel_size + self.box // 2  # (B, 2) pixels, (x, y)
        angle = (-2 * math.pi / self.box) * (
            offset[:, :1] * self.kx[None] + offset[:, 1:] * self.ky[None]
        )
        return torch.polar(torch.ones_like(angle), angle)

    def coordinates(self, rotations: torch.Tensor, padding: int) -> torch.Tensor:
        """(B, M, 3) model-frame frequencies (x, y, z) in units of the padded grid."""
        rows = rotations.to(self.kx.dtype)
        return padding * (
            self.kx[None, :, None] * rows[:, None, 0, :]
            + self.ky[None, :, None] * rows[:, None, 1, :]
        )

    def ctf(self, ctf: torch.Tensor, pixel_size: float) -> torch.Tensor:
        """(B, M) the CTF at the points, from (B, 8) parameters."""
        scale = 1.0 / (self.box * pixel_size)
        return compute_ctf(ctf.to(self.kx.dtype), self.kx * scale, self.ky * scale)


def _trilinear(coords: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(…, 3) coordinates (x, y, z) in grid units → flat [z, y, x] indices (…, 8) of the 8
    surrounding points of a periodic size³ grid and their trilinear weights (…, 8)."""
    base = torch.floor(coords)
    frac = coords - base
    corners = _corner_offsets(coords.device)  # (8, 3)
    index = (base.long()[..., None, :] + corners) % size  # (…, 8, 3)
    flat = (index[..., 2] * size + index[..., 1]) * size + index[..., 0]
    weights = torch.where(corners.bool(), frac[..., None, :], 1 - frac[..., None, :]).prod(-1)
    return flat, weights


def _negated(grid: torch.Tensor) -> torch.Tensor:
    """g(−k) on the unshifted (fftfreq) layout of the last three axes."""
    dims = (-3, -2, -1)
    return torch.roll(torch.flip(grid, dims), shifts=(1, 1, 1), dims=dims)


class FourierInserter:
    """Accumulates CTF-weighted image spectra and CTF² weights on a padded 3-D Fourier grid.

    Parameters
    ----------
    box : image size D (even).
    pixel_size : Å/px of the images.
    n_sets : number of independent accumulations (2 for half sets).
    padding : oversampling of the Fourier grid (P = padding·D points per axis).
    device, dtype : where and in which real precision the grids live (float32 or float64).

    Memory: n_sets · P³ · 3 real values (for D = 128, padding 2: 200 MB per set in float32).
    """

    def __init__(
        self,
        box: int,
        pixel_size: float,
        n_sets: int = 1,
        padding: int = 2,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        if box < 4 or box % 2 or not pixel_size > 0 or padding < 1 or n_sets < 1:
            raise InputError(
                f"box {box} px, pixel size {pixel_size} Å, padding {padding}: expected an even "
                "box ≥ 4, a positive pixel size and padding ≥ 1"
            )
        self.box, self.pixel_size, self.padding = int(box), float(pixel_size), int(padding)
        self.size = self.padding * self.box
        self.n_sets = int(n_sets)
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.dtype = dtype
        self.geometry = _SliceGeometry(self.box, self.device, dtype)
        # Channels: Re N, Im N, W for every grid point of every set.
        self.grid = torch.zeros(self.n_sets * self.size**3, 3, dtype=dtype, device=self.device)
        self.counts = [0] * self.n_sets

    @torch.no_grad()
    def insert(
        self,
        images: torch.Tensor,
        rotations: torch.Tensor,
        shifts: torch.Tensor | None = None,
        ctf: torch.Tensor | None = None,
        sets: torch.Tensor | None = None,
    ) -> None:
        """Insert (B, D, D) images with poses (B, 3, 3), shifts (B, 2) Å (image = projection
        translated by +shift; None for none), CTF (B, 8) (None for none) into set ``sets``
        (B,) ints in 0…n_sets−1 (default all 0). Inputs are moved to the inserter's device."""
        geometry, device, dtype = self.geometry, self.device, self.dtype
        images = images.to(device=device, dtype=dtype)
        if images.dim() != 3 or images.shape[-2:] != (self.box, self.box):
            raise ValueError(f"images {tuple(images.shape)}: expected (B, {self.box}, {self.box})")
        batch = images.shape[0]
        rotations = rotations.to(device=device, dtype=dtype)
        shifts = (
            torch.zeros(batch, 2, dtype=dtype, device=device)
            if shifts is None
            else shifts.to(device=device, dtype=dtype)
        )
        sets = (
            torch.zeros(batch, dtype=torch.long, device=device)
            if sets is None
            else torch.as_tensor(sets, device=device).long()
        )
        spectra = torch.fft.rfft2(images).reshape(batch, -1)[:, geometry.flat]
        # Undo the shift and move the origin to the centre: multiply by the conjugate phase.
        values = spectra * geometry.phase(shifts, self.pixel_size).conj()
        weights = geometry.column_weight.expand(batch, -1)
        if ctf is not None:
            transfer = geometry.ctf(ctf.to(device), self.pixel_size)
            values = values * transfer
            weights = weights * transfer**2
        values = values * geometry.column_weight
        flat, kernel = _trilinear(geometry.coordinates(rotations, self.padding), self.size)
        flat = flat + (sets * self.size**3)[:, None, None]
        source = torch.stack(
            [values.real[..., None] * kernel, values.imag[..., None] * kernel,
             weights[..., None] * kernel],
            dim=-1,
        )  # fmt: skip
        self.grid.index_add_(0, flat.reshape(-1), source.reshape(-1, 3))
        for s, n in zip(*torch.unique(sets, return_counts=True)):
            self.counts[int(s)] += int(n)

    def sums(self, index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, W) of set ``index`` (None: all sets together): the Friedel-symmetrized
        CTF-weighted sum, complex (P, P, P), and weight, real (P, P, P), [z, y, x] unshifted
        fftfreq layout."""
        grid = self.grid.view(self.n_sets, self.size, self.size, self.size, 3)
        grid = grid.sum(0) if index is None else grid[index]
        numerator = torch.complex(grid[..., 0], grid[..., 1])
        weight = grid[..., 2]
        return numerator + _negated(numerator).conj(), weight + _negated(weight)


def frequency_radius(size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(size, size, size) |k| in grid units on the unshifted fftfreq layout."""
    k = torch.fft.fftfreq(size, d=1.0 / size, device=device, dtype=dtype)
    return torch.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)


def _shell_sum(values: torch.Tensor, shells: torch.Tensor, n_shells: int) -> torch.Tensor:
    inside = shells < n_shells
    out = torch.zeros(n_shells, dtype=values.dtype, device=values.device)
    return out.index_add_(0, shells[inside], values[inside])


def ssnr_regularization(
    sums_a: tuple[torch.Tensor, torch.Tensor],
    sums_b: tuple[torch.Tensor, torch.Tensor],
    radius: torch.Tensor,
    n_shells: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RELION-style Wiener term from two half sets on the padded grid.

    With N = W·S + noise (noise variance ∝ W) in each half, the FSC of the two halves'
    sums N₁, N₂ in a shell gives SSNR_N = ⟨W²⟩ τ² / (σ² ⟨W⟩), so the per-image noise-to-signal
    ratio is σ²/τ² = ⟨W²⟩ / (⟨W⟩ · SSNR_N), SSNR_N = FSC / (1 − FSC) (FSC clamped to
    [0.001, 0.999]). That ratio is the ε of the Wiener estimate N / (W + ε); it is a
    property of the data, the same for a half set and for the full set.

    Returns (ε per shell (n_shells,), FSC per shell of N₁ and N₂ (n_shells,)).
    """
    (n_a, w_a), (n_b, w_b) = sums_a, sums_b
    shells = radius.round().long()
    cross = _shell_sum((n_a * n_b.conj()).real, shells, n_shells)
    power = _shell_sum(n_a.abs() ** 2, shells, n_shells) * _shell_sum(
        n_b.abs() ** 2, shells, n_shells
    )
    fsc = cross / torch.sqrt(power).clamp_min(torch.finfo(power.dtype).tiny)
    ssnr = fsc.clamp(*_FSC_RANGE)
    ssnr = ssnr / (1 - ssnr)
    count = _shell_sum(torch.ones_like(w_a), shells, n_shells).clamp_min(1)
    mean_w = 0.5 * (_shell_sum(w_a, shells, n_shells) + _shell_sum(w_b, shells, n_shells)) / count
    mean_w2 = 0.5 * (_shell_sum(w_a**2, shells, n_shells) + _shell_sum(w_b**2, shells, n_shells))
    mean_w2 = mean_w2 / count
    epsilon = mean_w2 / (mean_w.clamp_min(torch.finfo(mean_w.dtype).tiny) * ssnr)
    return epsilon, fsc


def gridding_correction(box: int, size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(box, box, box) the real-space transform of the trilinear kernel on a size³ Fourier
    grid, ∏ sinc²(x/size) over the axes, x = voxel − box//2 (what the volume is divided by)."""
    x = torch.arange(box, device=device, dtype=dtype) - box // 2
    s = torch.sinc(x / size) ** 2
    return s[:, None, None] * s[None, :, None] * s[None, None, :]


def _crop_index(box: int, size: int, device) -> torch.Tensor:
    """Padded-grid index of each output voxel: voxel i (x = i − box//2) ↔ (i − box//2) mod size."""
    return (torch.arange(box, device=device) - box // 2) % size


def _smooth(grid: torch.Tensor) -> torch.Tensor:
    """Periodic separable [¼, ½, ¼] convolution of a (P, P, P) grid (a triangle kernel of
    half-width 2 grid points: the local sampling density of ``density_compensation``)."""
    for axis in range(3):
        grid = 0.5 * grid + 0.25 * (torch.roll(grid, 1, axis) + torch.roll(grid, -1, axis))
    return grid


def density_compensation(weight: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """(P, P, P) factors d with (weight · d) ⊛ K ≈ 1 where weight > 0, by the fixed-point
    iteration d ← d / ((weight · d) ⊛ K) of Pipe & Menon (1999), as RELION's reconstruction
    does (K here: ``_smooth``). N · d is then the density-compensated estimate of the
    spectrum; unlike N / W it stays right where the samples are far apart on the padded grid
    (near the origin every slice passes through the same points)."""
    d = (weight > 0).to(weight.dtype)
    for _ in range(iterations):
        d = d / _smooth(weight * d).clamp_min(1e-12 * float(weight.max()))
    return d


def invert(
    numerator: torch.Tensor,
    weight: torch.Tensor,
    box: int,
    pixel_size: float,
    epsilon: torch.Tensor | float,
    radius: torch.Tensor | None = None,
    iterations: int = 10,
) -> torch.Tensor:
    """The volume (box, box, box) [z, y, x] from padded sums N, W (P³): Wiener estimate
    N · d with d the density compensation of W + ε (``density_compensation``; ``iterations``
    0 gives the plain ratio N / (W + ε)), inside |k| < P/2; inverse FFT, ÷ pixel_size, crop
    to the box, gridding correction (÷ sinc², the trilinear insertion kernel).

    ``epsilon``: a constant, or a per-shell tensor (shells of integer |k| on the padded grid).
    """
    size = numerator.shape[-1]
    if radius is None:
        radius = frequency_radius(size, numerator.device, weight.dtype)
    if isinstance(epsilon, torch.Tensor) and epsilon.dim() == 1:
        shells = radius.round().long().clamp_max(len(epsilon) - 1)
        epsilon = epsilon[shells]
    inside = radius < size / 2
    denominator = torch.where(inside & (weight > 0), weight + epsilon, 0)
    if iterations:
        factor = density_compensation(denominator, iterations)
    else:
        factor = torch.where(denominator > 0, 1 / torch.where(denominator > 0, denominator, 1), 0)
    spectrum = torch.where(inside, numerator * factor, 0)
    volume = torch.fft.ifftn(spectrum).real / pixel_size
    index = _crop_index(box, size, volume.device)
    volume = volume[index][:, index][:, :, index]
    return volume / gridding_correction(box, size, volume.device, volume.dtype)


@torch.no_grad()
def project_volume(
    volume: torch.Tensor,
    rotations: torch.Tensor,
    pixel_size: float,
    shifts: torch.Tensor | None = None,
    ctf: torch.Tensor | None = None,
    padding: int = 2,
    spectrum: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projection images (B, D, D) of a (D, D, D) [z, y, x] volume with the renderer's
    conventions (module docstring): Fourier-slice extraction by trilinear interpolation on a
    grid padded ``padding`` times, the volume pre-divided by the kernel's sinc². Band-limited
    to |k| < D/2. ``spectrum``: the padded spectrum from ``volume_spectrum`` (to reuse it over
    batches; ``volume`` is then ignored)."""
    box = volume.shape[-1] if spectrum is None else spectrum.shape[-1] // padding
    if spectrum is None:
        spectrum = volume_spectrum(volume, padding)
    size = spectrum.shape[-1]
    device, real = spectrum.device, spectrum.real.dtype
    geometry = _SliceGeometry(box, device, real)
    rotations = rotations.to(device=device, dtype=real)
    batch = rotations.shape[0]
    flat, kernel = _trilinear(geometry.coordinates(rotations, padding), size)
    values = (spectrum.reshape(-1)[flat] * kernel).sum(-1) * pixel_size  # (B, M)
    shifts = torch.zeros(batch, 2, dtype=real, device=device) if shifts is None else shifts
    values = values * geometry.phase(shifts.to(device=device, dtype=real), pixel_size)
    if ctf is not None:
        values = values * geometry.ctf(ctf.to(device), pixel_size)
    half = torch.zeros(batch, box * (box // 2 + 1), dtype=values.dtype, device=device)
    half[:, geometry.flat] = values
    return torch.fft.irfft2(half.view(batch, box, box // 2 + 1), s=(box, box))


def volume_spectrum(volume: torch.Tensor, padding: int = 2) -> torch.Tensor:
    """The padded (P, P, P) spectrum that ``project_volume`` samples: the volume divided by
    the trilinear gridding correction, its rotation centre (voxel D//2) moved to index 0."""
    box = volume.shape[-1]
    if volume.dim() != 3 or len(set(volume.shape)) != 1:
        raise InputError(f"volume of shape {tuple(volume.shape)}: expected a cube")
    size = padding * box
    real = volume.dtype if volume.is_floating_point() else torch.float32
    corrected = volume.to(real) / gridding_correction(box, size, volume.device, real)
    padded = torch.zeros(size, size, size, dtype=real, device=volume.device)
    index = _crop_index(box, size, volume.device)
    padded[index[:, None, None], index[None, :, None], index[None, None, :]] = corrected
    return torch.fft.fftn(padded)

"""Projection of atoms by gridding: a non-uniform FFT of the atoms' positions (type 1).

The same band-limited half-plane spectrum as ``cryomotion.imaging.projection``,

    P(k) = Σ_types F_t(k) Σ_{atoms a of type t} w_a exp(-2πi k·u_a / D),   |k_x|, |k_y| ≤ D//2,

(u_a in pixels from pixel 0, F_t the form factor f_t(|q|/2) / pixel_size² at q = k/(D·pixel
size)), evaluated in n·w² + T·(σD)² log(σD) operations per image instead of ~2D²n:

1. Spreading: every atom adds w_a φ(j - u_a/h) to the points j of an oversampled periodic grid
   of M = σD points per axis (spacing h = D/M px, σ = 2), one grid per scatterer type; φ is
   separable, φ(x) φ(y), and nonzero on w grid points per axis.
2. One real FFT per grid. By Poisson summation its value at frequency k is
   φ̂(k_y/M) φ̂(k_x/M) Σ_a w_a exp(-2πi k·u_a/D) plus aliases from k + mM, m ≠ 0, which φ̂
   makes small for |k| ≤ D/2 (φ̂ the continuous Fourier transform of φ, x in grid points).
3. Crop to |k| ≤ D//2, multiply by F_t(k) / (φ̂(k_y/M) φ̂(k_x/M)) (deconvolution and form
   factor in one weight), sum over types. At the Nyquist frequency of an even box the average
   of the ±D/2 components is used, as in ``projection``.

The kernel is the "exponential of semicircle" of FINUFFT (Barnett, Magland & af Klinteberg,
SIAM J. Sci. Comput. 41, C479 (2019)), φ(x) = exp(β(√(1 - (2x/w)²) - 1)) for |x| < w/2, with
β = 2.30·w at σ = 2; the relative error is about 10^-(w-1) (measured in
``tests/imaging/test_gridding.py``). φ̂ is computed once by Gauss–Legendre quadrature.

Gradients with respect to positions and amplitudes: the adjoint of the spreading is a gather
of ∂loss/∂grid at the same points followed by row and column sums against φ and φ' (two
small batched products per atom); the FFT, crop and weights are differentiated by autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

OVERSAMPLING = 2

# Bytes of oversampled grids spread and transformed at once. On a CPU small enough that a
# block's grids stay in cache between spreading and FFT (measured: blocks of a few images
# run up to 2.5x faster per image than 64 at once); on a GPU large, few kernel launches.
_CPU_BLOCK_BYTES = 2**21
_GPU_BLOCK_BYTES = 2**30


@dataclass(frozen=True)
class SpreadingKernel:
    """Exponential-of-semicircle spreading kernel φ(x) = exp(β(√(1 - (2x/w)²) - 1)), x in grid
    points, nonzero on ``width`` = w points per axis, on a grid of ``oversampling`` points per
    pixel. w = 5 gives image errors ~1e-4 and coordinate-gradient errors ~5e-4 (relative L2)."""

    width: int = 5
    oversampling: int = OVERSAMPLING

    def __post_init__(self):
        if self.width < 2 or self.oversampling < 2:
            raise ValueError(
                f"kernel width {self.width}, oversampling {self.oversampling}: expected ≥ 2 each"
            )

    @property
    def beta(self) -> float:
        """Shape β = 2.30·w: FINUFFT's choice for oversampling 2."""
        return 2.30 * self.width

    def fourier(self, frequency: np.ndarray) -> np.ndarray:
        """φ̂(ξ) = ∫ φ(x) exp(-2πi ξ x) dx, ξ in cycles per grid point (real: φ is even)."""
        half = self.width / 2
        nodes, weights = np.polynomial.legendre.leggauss(4 * self.width + 40)
        x = nodes * half
        values = np.exp(self.beta * (np.sqrt(1 - (x / half) ** 2) - 1))
        phases = np.cos(2 * np.pi * np.outer(frequency, x))
        return phases @ (values * weights) * half


def gridding_weights(
    quadrant: torch.Tensor, box: int, kernel: SpreadingKernel = SpreadingKernel()
) -> torch.Tensor:
    """(T, 2N+1, N+1), N = box//2: F_t(k) / (φ̂(k_y/M) φ̂(k_x/M)) for k_y = -N … N (rows in
    that order) and k_x = 0 … N, from the quadrant form factors (T, N+1, N+1) of
    ``projection.quadrant_form_factors`` (already divided by pixel_size²)."""
    half = box // 2
    grid = kernel.oversampling * box
    k = np.arange(half + 1)
    deconvolution = 1.0 / kernel.fourier(k / grid)  # (N+1,)
    rows = torch.cat([quadrant.flip(1)[:, :-1], quadrant], dim=1)  # k_y = -N … N
    correction = torch.as_tensor(deconvolution, dtype=quadrant.dtype, device=quadrant.device)
    row_correction = torch.cat([correction.flip(0)[:-1], correction])
    return rows * row_correction[:, None] * correction[None, :]


def _kernel_values(
    positions: torch.Tensor, kernel: SpreadingKernel, derivative: bool
) -> tuple[torch.Tensor, ...]:
    """For positions (..., 2) px: first grid point (..., 2) (long, not wrapped), kernel values
    (..., 2, w) at the w points from there, and with ``derivative`` dφ/du (..., 2, w) per
    pixel of u."""
    width = kernel.width
    spacing = kernel.oversampling  # grid points per pixel
    scaled = positions * spacing  # in grid points
    first = torch.ceil(scaled - 0.5 * width)
    offsets = torch.arange(width, dtype=positions.dtype, device=positions.device)
    distance = (first[..., None] + offsets - scaled[..., None]) * (2.0 / width)  # in (-1, 1]
    inside = (1 - distance.square()).clamp_min(0)
    root = inside.sqrt()
    values = torch.exp(kernel.beta * (root - 1)) * (inside > 0)
    if not derivative:
        return first.long(), values
    # d/du φ(j - σu) = φ · β · (d/dz √(1 - z²)) · dz/du, z = 2(j - σu)/w: dz/du = -2σ/w.
    slope = values * distance / root.clamp_min(1e-6) * (2.0 * kernel.beta * spacing / width)
    return first.long(), values, slope


def _patch_indices(
    first: torch.Tensor, type_index: torch.Tensor, n_types: int, width: int, grid: int
) -> torch.Tensor:
    """Flat indices (B, S, w·w) of every atom's w × w points in padded grids (B, T, M + w - 1,
    M + w - 1): the first point wrapped into 0 … M - 1, the patch unwrapped (``_fold``)."""
    padded = grid + width - 1
    start = first.remainder(grid)  # (B, S, 2): x, y
    batch = torch.arange(first.shape[0], device=first.device)[:, None]
    corner = ((batch * n_types + type_index) * padded + start[..., 1]) * padded + start[..., 0]
    steps = torch.arange(width, device=first.device)
    patch = (steps[:, None] * padded + steps[None, :]).reshape(-1)  # rows y, columns x
    return corner[..., None] + patch


def _fold(padded: torch.Tensor, grid: int) -> torch.Tensor:
    """Periodic grids (..., M, M) from padded ones (..., M + p, M + p), in place: the margin
    added to the start of each axis; returns a view of ``padded``."""
    margin = padded.shape[-1] - grid
    padded[..., :margin] += padded[..., grid:]
    padded[..., :margin, :] += padded[..., grid:, :]
    return padded[..., :grid, :grid]


class _Spreading(torch.autograd.Function):
    """Grids (B, T, M, M): Σ_a w_a φ(row - σu_y) φ(col - σu_x) at each atom's w × w points."""

    @staticmethod
    def forward(ctx, positions, amplitudes, type_index, n_types, grid, kernel):
        batch, count = positions.shape[:2]
        width = kernel.width
        first, values = _kernel_values(positions, kernel, derivative=False)
        if amplitudes is not None:
            values[:, :, 1] *= amplitudes[..., None]
        patches = values[:, :, 1, :, None] * values[:, :, 0, None, :]  # (B, S, w_y, w_x)
        index = _patch_indices(first, type_index, n_types, width, grid)
        padded = grid + width - 1
        grids = positions.new_zeros(batch, n_types, padded, padded)
        grids.view(-1).index_add_(0, index.view(-1), patches.view(-1))
        ctx.save_for_backward(positions, amplitudes, type_index)
        ctx.n_types, ctx.kernel, ctx.grid = n_types, kernel, grid
        return _fold(grids, grid)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_grids):
        positions, amplitudes, type_index = ctx.saved_tensors
        want_positions, want_amplitudes = ctx.needs_input_grad[:2]
        if not (want_positions or want_amplitudes):
            return None, None, None, None, None, None
        kernel, grid = ctx.kernel, ctx.grid
        batch, count = positions.shape[:2]
        width = kernel.width
        first, values, slope = _kernel_values(positions, kernel, derivative=True)
        index = _patch_indices(first, type_index, ctx.n_types, width, grid)
        # Adjoint of the fold: the periodic extension.
        extended = torch.nn.functional.pad(grad_grids, (0, width - 1, 0, width - 1), "circular")
        gathered = extended.reshape(-1).index_select(0, index.view(-1))
        gathered = gathered.view(batch * count, width, width)
        # Row and column sums against φ (elementwise: MKL's batched products of w × w
        # matrices cost several times more here).
        value_x = values[:, :, 0].reshape(-1, 1, width)
        value_y = values[:, :, 1].reshape(-1, width, 1)
        along_x = (gathered * value_y).sum(1).view(batch, count, width)  # Σ_rows g φ_y
        along_y = (gathered * value_x).sum(2).view(batch, count, width)  # Σ_cols g φ_x
        grad_positions = grad_amplitudes = None
        if want_positions:
            grad_positions = torch.stack(
                [(along_x * slope[:, :, 0]).sum(-1), (along_y * slope[:, :, 1]).sum(-1)], -1
            )
            if amplitudes is not None:
                grad_positions = grad_positions * amplitudes[..., None]
        if want_amplitudes:
            grad_amplitudes = (along_x * values[:, :, 0]).sum(-1)
        return grad_positions, grad_amplitudes, None, None, None, None


class _Transform(torch.autograd.Function):
    """Grids (B, T, M, M) → Σ_t W_t ⊙ DFT(grid_t) (B, 2N+1, N+1) at k_y = -N … N,
    k_x = 0 … N (rows in that order), W (T, 2N+1, N+1) real.

    Backward: with G = ∂loss/∂Re + i ∂loss/∂Im of the result, ∂loss/∂grid_t[j] =
    Re Σ_k W_t(k) G(k) exp(+2πi k·j/M): zero-padded inverse transforms, the x one as an
    inverse real FFT of the columns k_x ≥ 1 halved (it doubles them)."""

    @staticmethod
    def forward(ctx, grids, weights, half):
        grid = grids.shape[-1]
        along_x = torch.fft.rfft(grids, dim=-1)[..., : half + 1]
        transform = torch.fft.fft(along_x, dim=-2)
        rows = torch.cat([transform[..., grid - half :, :], transform[..., : half + 1, :]], -2)
        ctx.save_for_backward(weights)
        ctx.half, ctx.grid = half, grid
        return torch.einsum("btyx,tyx->byx", rows, weights.to(rows.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (weights,) = ctx.saved_tensors
        half, grid = ctx.half, ctx.grid
        per_type = grad[:, None] * weights  # (B, T, 2N+1, N+1)
        padded = per_type.new_zeros(per_type.shape[:2] + (grid, half + 1))
        padded[..., : half + 1, :] = per_type[..., half:, :]
        padded[..., grid - half :, :] = per_type[..., :half, :]
        padded[..., 1:] *= 0.5
        along_y = torch.fft.ifft(padded, dim=-2, norm="forward")
        return torch.fft.irfft(along_y, n=grid, dim=-1, norm="forward"), None, None


def _fold_nyquist(spectrum: torch.Tensor, box: int) -> torch.Tensor:
    """(B, 2N+1, N+1), rows k_y = -N … N → rfft2 layout (B, box, N+1), with the ±N components
    of an even box averaged (x: P(k_y, -N) = conj P(-k_y, N) for a real image)."""
    half = box // 2
    if box % 2 == 0:
        column = 0.5 * (spectrum[:, :, half] + spectrum[:, :, half].flip(1).conj())
        spectrum = torch.cat([spectrum[:, :, :half], column[:, :, None]], dim=2)
        row = 0.5 * (spectrum[:, 0] + spectrum[:, 2 * half])
        return torch.cat([spectrum[:, half : 2 * half], row[:, None], spectrum[:, 1:half]], dim=1)
    return torch.cat([spectrum[:, half:], spectrum[:, :half]], dim=1)


def project_gridding(
    positions: torch.Tensor,
    weights: torch.Tensor,
    type_offsets: Sequence[int],
    box: int,
    amplitudes: torch.Tensor | None = None,
    kernel: SpreadingKernel = SpreadingKernel(),
    type_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Half-plane spectrum of the band-limited projection of typed atoms, by gridding.

    Same arguments and result as ``projection.project_fourier`` except ``weights``: (T, 2N+1,
    N+1) from ``gridding_weights(quadrant_form_factors(...), box, kernel)``. The result agrees
    with ``project_fourier`` to the kernel's accuracy (about 10^-(w-1) relative).
    ``type_index`` : optional (S,) long, each scatterer's type, on the positions' device (built
    from ``type_offsets`` when not given; give it to avoid a small host-to-device copy per call).
    """
    if positions.dim() != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (B, S, 2), got {tuple(positions.shape)}")
    if type_offsets[-1] != positions.shape[1]:
        raise ValueError(
            f"type_offsets end at {type_offsets[-1]}, positions hold {positions.shape[1]}"
        )
    n_types = len(type_offsets) - 1
    half = box // 2
    grid = kernel.oversampling * box
    if amplitudes is not None:
        amplitudes = amplitudes.to(positions.dtype).expand(positions.shape[:2])
    if type_index is None:
        counts = torch.as_tensor(np.diff(type_offsets), device=positions.device)
        type_index = torch.repeat_interleave(
            torch.arange(n_types, device=positions.device), counts, output_size=positions.shape[1]
        )
    weights = weights.to(positions.dtype)
    per_image = n_types * (grid + kernel.width) ** 2 * positions.element_size()
    if positions.device.type == "cpu":
        budget = _CPU_BLOCK_BYTES
    else:
        # Also bound the patches (values, flat indices, gathered gradients) of a block.
        budget = _GPU_BLOCK_BYTES
        per_image += positions.shape[1] * kernel.width**2 * (2 * positions.element_size() + 8)
    block = max(1, budget // per_image)
    spectra = []
    for start in range(0, positions.shape[0], block):
        images = slice(start, start + block)
        scale = None if amplitudes is None else amplitudes[images]
        grids = _Spreading.apply(positions[images], scale, type_index, n_types, grid, kernel)
        spectra.append(_Transform.apply(grids, weights, half))
    spectrum = spectra[0] if len(spectra) == 1 else torch.cat(spectra)
    return _fold_nyquist(spectrum, box)


# Seconds per image of forward + backward on one CPU core (one thread, float32), fitted by
# ``benchmarks/projection_crossover.py`` (2026-12-04, 2-core Xeon, load ~3.5) to the terms of
# ``cost_terms``: within ±20 % of the measured times from 200 to 12,800 scatterers, 32 to 256 px.
COST_MODEL = {
    "direct": (2.297e-10, 1.909e-08, 2.678e-08),
    "gridding": (4.049e-07, 9.117e-10, 9.132e-09, 1.304e-04),
}


def cost_terms(method: str, n_scatterers: int, n_types: int, box: int) -> tuple[float, ...]:
    """The quantities one image's cost is taken proportional to, for ``method``:

    * "direct": n K² (table products), n K (table cosines), D² (pixels), K = D//2 + 1;
    * "gridding": n (spreading), T M² log₂ M (FFTs, M = 2D), D² (pixels), 1 (per image).
    """
    if method == "direct":
        half = box // 2 + 1
        return (n_scatterers * half**2, n_scatterers * half, box**2)
    if method == "gridding":
        grid = OVERSAMPLING * box
        return (n_scatterers, n_types * grid**2 * math.log2(grid), box**2, 1.0)
    raise ValueError(f"projection method {method!r}: expected 'direct' or 'gridding'")


def predicted_seconds(method: str, n_scatterers: int, n_types: int, box: int) -> float:
    """Cost model of one image's forward + backward by ``method`` ("direct" or "gridding"),
    seconds on one CPU core: ``COST_MODEL`` · ``cost_terms``."""
    terms = cost_terms(method, n_scatterers, n_types, box)
    return float(sum(c * t for c, t in zip(COST_MODEL[method], terms, strict=True)))

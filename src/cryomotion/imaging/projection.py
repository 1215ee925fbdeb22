"""Projection of atoms onto the pixel grid, evaluated exactly in Fourier space.

By the projection-slice theorem the 2-D Fourier transform of the projected potential of atoms
at in-plane positions r_a is

    P(q) = Σ_types f_t(|q|/2) Σ_{atoms a of type t} w_a exp(-2πi q·r_a),

with f_t(s) = Σ_i a_i exp(-b_i s²) the electron form factor (a_i in Å, b_i in Å²) and w_a an
optional per-atom amplitude. Sampling P at the DFT frequencies q = k / (D·pixel_size) and
taking one inverse DFT gives the band-limited image (the projected potential low-pass
filtered at Nyquist, periodic over the box), without aliasing from atoms narrower than a
pixel. At the Nyquist frequency of an even box the average of the ±D/2 components is used
(a real cosine), as everywhere in ``cryomotion.imaging.fourier``.

The atom sum is separable. With u = (u_x, u_y) an atom's position in pixels from pixel 0 and
ω_k = 2πk/D for k = 0 … D//2, the tables

    L_y[a] = [cos ω_k u_y, sin ω_k u_y]_k,   L_x[a] = [cos ω_k u_x, sin ω_k u_x]_k   (2K values)

give all four products Σ_a w_a L_y[a]ᵀ L_x[a] (cos·cos, cos·sin, sin·cos, sin·sin) in one real
matrix product per type, (2K × n)·(n × 2K), K = D//2 + 1. Rows k_y ≥ 0 and k_y < 0 of the
half-plane spectrum both follow from these (exp(+iα) is the conjugate of exp(-iα)), so the
products cover the whole rfft grid at half the cost of the complex (D × n)·(n × K) product.
The gradient with respect to positions and amplitudes is written out (two more products of
the same size). Tables are built in cache-sized blocks of images × atoms and rebuilt in the
backward pass rather than stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.autograd.function import once_differentiable

# Size of the cos/sin tables of one block of (images × atoms). On a CPU, per thread: small
# enough to stay in a core's cache while the block's products are formed, large enough to
# amortize the per-call cost; each thread gets whole images (MKL splits one small product
# over threads badly). On a GPU: large, few kernel launches.
_CPU_CHUNK_BYTES_PER_THREAD = 2**19
_GPU_CHUNK_BYTES = 2**28


def _chunk_budget(device: torch.device) -> tuple[int, int]:
    """(bytes per image group, number of image groups per block) for ``device``."""
    if device.type == "cpu":
        return _CPU_CHUNK_BYTES_PER_THREAD, max(1, torch.get_num_threads())
    return _GPU_CHUNK_BYTES, 1


def quadrant_form_factors(
    form_factor_a: torch.Tensor, form_factor_b: torch.Tensor, box: int, pixel_size: float
) -> torch.Tensor:
    """(T, K, K), K = box//2 + 1: f_t(|q|/2) / pixel_size² at q = (k_y, k_x) / (box·pixel_size)
    for k_y, k_x = 0 … box//2, from 5-Gaussian coefficients a (T, G) Å and b (T, G) Å².

    Divided by pixel_size² so that the inverse DFT of the spectrum is the projected
    potential in Å⁻¹ (potential integrated along z per Å² of image).
    """
    k = torch.arange(box // 2 + 1, dtype=form_factor_a.dtype, device=form_factor_a.device)
    q2 = (k[:, None] ** 2 + k[None, :] ** 2) / (box * pixel_size) ** 2
    # f(s) with s = |q|/2: exp(-b s²) = exp(-b |q|² / 4).
    gaussians = torch.exp(-0.25 * form_factor_b[:, :, None, None] * q2)
    return (form_factor_a[:, :, None, None] * gaussians).sum(1) / pixel_size**2


def gram_weights(quadrant: torch.Tensor, box: int) -> torch.Tensor:
    """(T, 2K, 2K) weights of the table products: the quadrant form factors (T, K, K) tiled
    over the four (cos/sin × cos/sin) blocks, with the sine rows and columns of the Nyquist
    frequency of an even box set to zero (symmetric Nyquist convention)."""
    half = box // 2 + 1
    keep = torch.ones(2 * half, dtype=quadrant.dtype, device=quadrant.device)
    if box % 2 == 0:
        keep[2 * half - 1] = 0
    return quadrant.repeat(1, 2, 2) * keep[:, None] * keep[None, :]


def _tables(planes: torch.Tensor, frequency: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """planes (2, b, n) px, x then y → (2, b, n, 2K): the row [cos ω_k u, sin ω_k u]_k of every
    atom, from ``frequency`` = [ω, ω] and ``offset`` = [0, -π/2] (sin θ = cos(θ - π/2): one
    pass)."""
    return torch.addcmul(offset, planes[..., None], frequency).cos_()


def _chunks(
    type_offsets: Sequence[int], batch: int, half: int, like: torch.Tensor
) -> list[tuple[int, slice, slice]]:
    """(type, images, atoms) blocks whose tables take about the ``_chunk_budget``, so that on a
    CPU each block is built, used and dropped while it is in cache."""
    budget, groups = _chunk_budget(like.device)
    per_atom = 2 * 2 * half * like.element_size()  # x and y tables of one atom in one image
    chunks = []
    for t in range(len(type_offsets) - 1):
        first, last = type_offsets[t], type_offsets[t + 1]
        if last == first:
            continue
        atoms_per_block = max(1, min(last - first, budget // per_atom))
        images_per_block = groups * max(1, budget // (per_atom * atoms_per_block))
        for b0 in range(0, batch, images_per_block):
            for a0 in range(first, last, atoms_per_block):
                chunks.append(
                    (
                        t,
                        slice(b0, min(b0 + images_per_block, batch)),
                        slice(a0, min(a0 + atoms_per_block, last)),
                    )
                )
    return chunks


def _frequencies(box: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ω_k = 2πk/box (K,), and the table's [ω, ω] and [0, -π/2] rows (2K,)."""
    half = box // 2 + 1
    omega = torch.arange(half, dtype=like.dtype, device=like.device) * (2 * math.pi / box)
    offset = torch.zeros(2 * half, dtype=like.dtype, device=like.device)
    offset[half:] = -0.5 * math.pi
    return omega, torch.cat([omega, omega]), offset


def _assemble(products: torch.Tensor, box: int) -> torch.Tensor:
    """Table products (B, 2K, 2K) → half-plane spectrum, complex (B, box, K), rfft2 layout.

    With α = ω k_y u_y, β = ω k_x u_x: exp(-i(α+β)) gives rows k_y ≥ 0 and exp(-i(-α+β)) the
    rows k_y < 0 (k = box - K … 1, stored in reverse)."""
    half = box // 2 + 1
    negative = slice(1, box - half + 1)
    cc, cs = products[:, :half, :half], products[:, :half, half:]
    sc, ss = products[:, half:, :half], products[:, half:, half:]
    real = torch.cat([cc - ss, (cc[:, negative] + ss[:, negative]).flip(1)], dim=1)
    imag = torch.cat([-(sc + cs), (sc[:, negative] - cs[:, negative]).flip(1)], dim=1)
    return torch.complex(real, imag)


def _gradient_blocks(grad: torch.Tensor, box: int) -> tuple[torch.Tensor, ...]:
    """Adjoint of ``_assemble``: ∂loss/∂spectrum (complex (B, box, K), ∂/∂Re + i ∂/∂Im) →
    ∂loss/∂ of the four (B, K, K) blocks cos·cos, cos_y·sin_x, sin_y·cos_x, sin·sin."""
    half = box // 2 + 1
    count = box - half
    grad_real, grad_imag = grad.real, grad.imag
    pos_real, pos_imag = grad_real[:, :half], grad_imag[:, :half]
    neg_real = torch.zeros_like(pos_real)
    neg_imag = torch.zeros_like(pos_imag)
    neg_real[:, 1 : count + 1] = grad_real[:, half:].flip(1)
    neg_imag[:, 1 : count + 1] = grad_imag[:, half:].flip(1)
    return (
        pos_real + neg_real,  # cos·cos
        -(pos_imag + neg_imag),  # cos_y·sin_x
        neg_imag - pos_imag,  # sin_y·cos_x
        neg_real - pos_real,  # sin·sin
    )


def _gradient_right(grad: torch.Tensor, box: int, omega: torch.Tensor, amplitudes: bool):
    """[G Jᵀ | J G] (and G when ``amplitudes``) as (B, 2K, n·2K) from ∂loss/∂spectrum, G the
    adjoint of ``_assemble`` (one strided write per block; see ``_Projection``)."""
    half = box // 2 + 1
    gcc, gcs, gsc, gss = _gradient_blocks(grad, box)
    groups = 6 if amplitudes else 4
    out = gcc.new_empty(gcc.shape[0], 2, half, groups, half)
    column = omega  # ω at k_x, broadcast along columns
    row = omega[:, None]  # ω at k_y, broadcast along rows
    # G Jᵀ: columns (cos, sin) ← (ω G[:, sin], -ω G[:, cos]); J G: rows (cos, sin) ← (ω G[sin],
    # -ω G[cos]).
    torch.mul(gcs, column, out=out[:, 0, :, 0])
    torch.mul(gcc, -column, out=out[:, 0, :, 1])
    torch.mul(gss, column, out=out[:, 1, :, 0])
    torch.mul(gsc, -column, out=out[:, 1, :, 1])
    torch.mul(gsc, row, out=out[:, 0, :, 2])
    torch.mul(gss, row, out=out[:, 0, :, 3])
    torch.mul(gcc, -row, out=out[:, 1, :, 2])
    torch.mul(gcs, -row, out=out[:, 1, :, 3])
    if amplitudes:
        out[:, 0, :, 4], out[:, 0, :, 5] = gcc, gcs
        out[:, 1, :, 4], out[:, 1, :, 5] = gsc, gss
    return out.view(gcc.shape[0], 2 * half, groups * half)


class _Projection(torch.autograd.Function):
    """Σ_t W_t ⊙ Σ_{a ∈ t} w_a L_y[a]ᵀ L_x[a] (B, 2K, 2K), assembled into the half-plane
    spectrum; see the module docstring.

    Backward: with J the (2K × 2K) derivative of a table row with respect to u
    (L' = L J: cos → -ω sin, sin → ω cos) and G_t = W_t ⊙ ∂loss/∂products,

        ∂/∂u_x[a] = w_a Σ_c (L_y G_t Jᵀ)[a, c] L_x[a, c]
        ∂/∂u_y[a] = w_a Σ_c (L_y J G_t)[a, c] L_x[a, c]
        ∂/∂w_a    =     Σ_c (L_y G_t)[a, c]    L_x[a, c]

    i.e. one product L_y·[G_t Jᵀ | J G_t | G_t] per block and row-wise dot products with L_x.
    Since J only swaps and scales rows or columns, [G_t Jᵀ | J G_t | G_t] is the
    type-independent [G Jᵀ | J G | G] times W_t with its columns or rows swapped. The tables
    are rebuilt block by block: recomputing cosines in cache costs less than storing the
    tables and reading them back from memory.
    """

    @staticmethod
    def forward(ctx, positions, amplitudes, weights, type_offsets, box):
        batch = positions.shape[0]
        half = box // 2 + 1
        _, frequency, offset = _frequencies(box, positions)
        planes = positions.permute(2, 0, 1).contiguous()  # (2, B, S): x, y
        products = positions.new_zeros(batch, 2 * half, 2 * half)
        for t, images, atoms in _chunks(type_offsets, batch, half, positions):
            table_x, table_y = _tables(planes[:, images, atoms], frequency, offset)
            if amplitudes is not None:
                table_x.mul_(amplitudes[images, atoms, None])  # a fresh table: in place
            products[images].addcmul_(weights[t], torch.bmm(table_y.transpose(1, 2), table_x))
        ctx.save_for_backward(planes, amplitudes, weights)
        ctx.type_offsets, ctx.box = type_offsets, box
        return _assemble(products, box)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spectrum):
        planes, amplitudes, weights = ctx.saved_tensors
        want_positions, want_amplitudes = ctx.needs_input_grad[:2]
        want_amplitudes = want_amplitudes and amplitudes is not None
        batch, half = planes.shape[1], ctx.box // 2 + 1
        grad_positions = planes.new_empty(batch, planes.shape[2], 2) if want_positions else None
        grad_amplitudes = torch.empty_like(amplitudes) if want_amplitudes else None
        if not (want_positions or want_amplitudes):
            return None, None, None, None, None
        omega, frequency, offset = _frequencies(ctx.box, planes)
        swap = torch.cat([torch.arange(half, 2 * half), torch.arange(half)]).to(planes.device)
        # Type-independent right-hand side [G Jᵀ | J G | G] and its per-type weights.
        base = _gradient_right(grad_spectrum, ctx.box, omega, want_amplitudes)
        type_weights = [weights[:, :, swap], weights[:, swap, :]]
        if want_amplitudes:
            type_weights.append(weights)
        type_weights = torch.cat(type_weights, 2)
        n_blocks = base.shape[2] // (2 * half)  # 2 (x, y), or 3 with the amplitudes
        right, right_type = None, -1
        for t, images, atoms in _chunks(ctx.type_offsets, batch, half, planes):
            if t != right_type:
                right, right_type = base * type_weights[t], t
            table_x, table_y = _tables(planes[:, images, atoms], frequency, offset)
            count, n = table_y.shape[:2]
            products = torch.bmm(table_y, right[images])  # (b, n, blocks·2K)
            dots = torch.bmm(
                products.view(count * n, n_blocks, 2 * half),
                table_x.reshape(count * n, 2 * half, 1),
            ).view(count, n, n_blocks)
            if want_amplitudes:
                grad_amplitudes[images, atoms] = dots[..., -1]
            if want_positions:
                scale = 1 if amplitudes is None else amplitudes[images, atoms, None]
                grad_positions[images, atoms] = dots[..., :2] * scale
        return grad_positions, grad_amplitudes, None, None, None


def project_fourier(
    positions: torch.Tensor,
    weights: torch.Tensor,
    type_offsets: Sequence[int],
    box: int,
    amplitudes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Half-plane spectrum of the band-limited projection of typed atoms.

    Parameters
    ----------
    positions : (B, S, 2) in-plane positions in pixels from pixel 0 (not from the image
        origin), as (x = column, y = row); atoms sorted by type.
    weights : (T, 2K, 2K) from ``gram_weights(quadrant_form_factors(...), box)``.
    type_offsets : T + 1 increasing ints; atoms type_offsets[t]:type_offsets[t+1] are type t.
    amplitudes : optional (B, S) or (S,) per-atom multipliers (differentiable).

    Returns
    -------
    complex (B, box, box//2 + 1): exactly ``torch.fft.rfft2`` of the projected-potential image
    (Å⁻¹ per pixel), so ``torch.fft.irfft2(spectrum, s=(box, box))`` is the image.
    Differentiable with respect to ``positions`` and ``amplitudes`` (first order).
    """
    if positions.dim() != 3 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be (B, S, 2), got {tuple(positions.shape)}")
    if type_offsets[-1] != positions.shape[1]:
        raise ValueError(
            f"type_offsets end at {type_offsets[-1]}, positions hold {positions.shape[1]}"
        )
    if amplitudes is not None:
        amplitudes = amplitudes.to(positions.dtype).expand(positions.shape[:2])
    weights = weights.to(positions.dtype)
    return _Projection.apply(positions, amplitudes, weights, tuple(type_offsets), box)

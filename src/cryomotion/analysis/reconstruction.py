"""Rigid 3-D reconstruction of particles from their poses and CTFs, half maps and FSC.

``reconstruct`` reads the particle images in batches (``ParticleDataset`` + ``DataLoader``,
bounded memory), inserts them into a padded 3-D Fourier grid (``imaging.backprojection``:
central-slice theorem, trilinear kernel, CTF-weighted spectra, CTF² weights, Pipe–Menon
density compensation, sinc² gridding correction) and returns the map, optionally with two
half maps and their FSC. Regularisation: with half sets, RELION's Wiener term from the
half sets' SSNR (FSC/(1 − FSC) per shell); without, a constant ε = ``regularization`` × the
mean CTF² weight. The maps follow the renderer's conventions: voxel (k, j, i) at
origin + (i, j, k)·voxel_size, with the rotation centre on voxel (D//2, D//2, D//2), so
``origin = rotation_center − (D//2)·voxel_size`` (0 for a model in the consensus-map frame),
the same grid as ``analysis.maps.atomic_potential_map``.

``write_reconstruction`` writes MAP.mrc and, with half maps, MAP_half1.mrc, MAP_half2.mrc,
MAP_fsc.tsv and MAP_fsc.png (``reconstruction_paths``); ``model_vs_data_fsc`` reconstructs a
set of particles on the grid of a model's map and returns the FSC between the two (the
check of model bias) with the half-map FSC; ``state_model_fsc`` does that for every state
of an analysis folder from its star subsets (``cryomotion analyze --reconstruct`` uses the
particle table and the states' member indices instead, so it works for .cs/.pkl data too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from cryomotion.analysis.maps import write_map
from cryomotion.analysis.metrics import fourier_shell_correlation, resolution_at
from cryomotion.atomic_write import atomic_path
from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.particles import ParticleTable, star_particle_block
from cryomotion.errors import InputError
from cryomotion.imaging.backprojection import (
    FourierInserter,
    frequency_radius,
    invert,
    ssnr_regularization,
)

THRESHOLDS = (0.143, 0.5)


@dataclass
class Reconstruction:
    """A reconstruction: maps (z, y, x) float32, voxel size and origin (Å), and the half-map
    FSC (``frequency`` 1/Å per shell 0…D//2) when there are half maps."""

    volume: np.ndarray
    voxel_size: float
    origin: np.ndarray
    n_particles: int
    regularization: str
    half_maps: tuple[np.ndarray, np.ndarray] | None = None
    half_sizes: tuple[int, int] | None = None
    frequency: np.ndarray | None = None
    fsc: np.ndarray | None = None
    fsc_masked: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def resolution(self, threshold: float = 0.143, masked: bool = False) -> float | None:
        """Resolution (Å) where the half-map FSC (masked if there is a mask and ``masked``)
        first falls below ``threshold``; None without half maps."""
        curve = self.fsc_masked if masked and self.fsc_masked is not None else self.fsc
        if curve is None:
            return None
        return resolution_at(self.frequency, curve, threshold)


def split_halves(table: ParticleTable, indices: np.ndarray, seed: int = 0) -> np.ndarray:
    """(len(indices),) half-set labels 0/1: the STAR file's ``rlnRandomSubset`` (1 or 2) when
    it has one, else a seeded random split into two halves of equal size (±1)."""
    indices = np.asarray(indices)
    if table.star is not None:
        block = table.star[star_particle_block(table.star)]
        if "rlnRandomSubset" in block.columns:
            subset = np.asarray(block["rlnRandomSubset"], dtype=np.int64)[indices]
            if not np.isin(subset, (1, 2)).all():
                raise InputError(
                    f"{table.source}: rlnRandomSubset must be 1 or 2 for every particle"
                )
            return subset - 1
    labels = np.zeros(len(indices), dtype=np.int64)
    labels[np.random.default_rng(seed).permutation(len(indices))[len(indices) // 2 :]] = 1
    return labels


def read_mask(path: str | Path, box: int) -> np.ndarray:
    """A (box, box, box) mask from an MRC file; InputError if it has another shape."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask not found")
    try:
        with mrcfile.open(path, permissive=True) as mrc:
            mask = np.asarray(mrc.data, dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable MRC map ({exc})") from exc
    if mask.shape != (box,) * 3:
        raise InputError(
            f"{path}: mask of shape {mask.shape}, expected ({box}, {box}, {box}) like the "
            "reconstruction (with --box, give a mask at the cropped box)"
        )
    return mask


def _device(device) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reconstruct(
    particles: ParticleTable | ParticleDataset,
    indices=None,
    box: int | None = None,
    halves=False,
    mask: np.ndarray | None = None,
    invert_contrast: bool = False,
    rotation_center=None,
    seed: int = 0,
    regularization: float = 1e-3,
    padding: int = 2,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> Reconstruction:
    """Direct Fourier inversion of the particles ``indices`` (default all) of a table or
    dataset with their poses, shifts and CTFs.

    Parameters
    ----------
    particles : a ``ParticleTable`` (read at ``box`` with ``invert_contrast``) or a
        ``ParticleDataset`` (used as it is: ``box`` and ``invert_contrast`` are ignored).
    box : Fourier-crop the images to this box (even); default the stacks' box.
    halves : False for one map; True to split into half sets (``split_halves``: the STAR
        file's rlnRandomSubset, else a random split seeded by ``seed``); or an array of 0/1
        labels, one per selected particle. With halves, the maps are regularised with the
        half sets' SSNR and the half-map FSC is returned.
    mask : (D, D, D) array for a masked FSC (besides the unmasked one).
    rotation_center : (3,) Å, the point the poses rotate about (the map's voxel D//2);
        default (D//2)·pixel_size of the original box, i.e. a map origin of 0.
    regularization : without halves, ε = regularization × mean CTF² weight (Wiener constant).
    padding : oversampling of the Fourier grid (memory ∝ (padding·D)³).
    device : where the Fourier grids live (default CUDA when present); images are read on
        the CPU by ``num_workers`` DataLoader workers.
    """
    dataset = (
        particles
        if isinstance(particles, ParticleDataset)
        else ParticleDataset(particles, box=box, invert_contrast=invert_contrast)
    )
    table = dataset.table
    indices = np.arange(len(table)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise InputError(f"{table.source}: no particles selected")
    if isinstance(halves, (bool, np.bool_)):
        labels = split_halves(table, indices, seed) if halves else np.zeros(len(indices), int)
        use_halves = bool(halves)
    else:
        labels = np.asarray(halves, dtype=np.int64).reshape(-1)
        if labels.shape != indices.shape or not np.isin(labels, (0, 1)).all():
            raise InputError("half-set labels: expected one 0 or 1 per selected particle")
        use_halves = True
    if use_halves and min(np.bincount(labels, minlength=2)) == 0:
        raise InputError(f"{table.source}: a half set is empty; select more particles")
    pixel_size = dataset.pixel_size
    size = dataset.box
    full_pixel = table.single_pixel_size
    center = (
        np.full(3, (table.box_size // 2) * full_pixel)
        if rotation_center is None
        else np.asarray(rotation_center, dtype=np.float64).reshape(3)
    )
    device = _device(device)
    inserter = FourierInserter(
        size, pixel_size, n_sets=2 if use_halves else 1, padding=padding, device=device,
        dtype=dtype,
    )  # fmt: skip
    label_of = np.full(len(table), -1, dtype=np.int64)
    label_of[indices] = labels
    loader = DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=len(indices), unit="img", desc="reconstruct", disable=not progress)
    for batch in loader:
        # The map's grid is centred on the rotation centre (origin = c − (D//2)·voxel), so
        # in its own frame the poses rotate about its centre voxel: no extra shift.
        sets = torch.as_tensor(label_of[batch["index"].numpy()])
        inserter.insert(batch["image"], batch["rotation"], batch["shift"], batch["ctf"], sets)
        bar.update(len(sets))
    bar.close()
    dataset.close()
    result = _finish(inserter, use_halves, regularization, mask)
    result.n_particles = len(indices)
    result.origin = center - (size // 2) * pixel_size
    if use_halves:
        result.half_sizes = tuple(int(v) for v in np.bincount(labels, minlength=2))
    return result


def _finish(
    inserter: FourierInserter, use_halves: bool, regularization: float, mask
) -> Reconstruction:
    """Maps (and half maps with their FSC) from the inserter's sums."""
    box, pixel_size = inserter.box, inserter.pixel_size
    size = inserter.size
    radius = frequency_radius(size, inserter.device, inserter.dtype)

    def to_numpy(volume: torch.Tensor) -> np.ndarray:
        return volume.cpu().numpy().astype(np.float32)

    if not use_halves:
        numerator, weight = inserter.sums()
        epsilon = regularization * float(weight[radius < size / 2].mean())
        volume = invert(numerator, weight, box, pixel_size, epsilon, radius)
        return Reconstruction(
            to_numpy(volume), pixel_size, np.zeros(3), inserter.counts[0],
            f"constant Wiener term ε = {regularization:g} × mean CTF² weight",
        )  # fmt: skip
    sums = [inserter.sums(0), inserter.sums(1)]
    epsilon, _ = ssnr_regularization(sums[0], sums[1], radius, size // 2 + 1)
    halves = tuple(to_numpy(invert(n, w, box, pixel_size, epsilon, radius)) for n, w in sums)
    numerator, weight = inserter.sums()
    volume = to_numpy(invert(numerator, weight, box, pixel_size, epsilon, radius))
    frequency, fsc = fourier_shell_correlation(halves[0], halves[1], pixel_size)
    fsc_masked = None
    if mask is not None:
        _, fsc_masked = fourier_shell_correlation(halves[0] * mask, halves[1] * mask, pixel_size)
    return Reconstruction(
        volume, pixel_size, np.zeros(3), sum(inserter.counts),
        "Wiener term from the half sets' SSNR (FSC/(1-FSC)), RELION-style",
        half_maps=halves, frequency=frequency, fsc=fsc, fsc_masked=fsc_masked,
    )  # fmt: skip


def fsc_table(frequency: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    """Write FSC curves as TSV: shell, frequency (1/Å), resolution (Å), one column per curve."""
    path = Path(path)
    names = list(curves)
    lines = ["\t".join(["shell", "frequency_per_A", "resolution_A", *names])]
    for shell, f in enumerate(frequency):
        resolution = f"{1 / f:.3f}" if f > 0 else "inf"
        values = [f"{curves[name][shell]:.5f}" for name in names]
        lines.append("\t".join([str(shell), f"{f:.5f}", resolution, *values]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def fsc_plot(
    frequency: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str = ""
) -> Path:
    """FSC curves against spatial frequency with the 0.143 and 0.5 thresholds and the
    resolutions where each curve crosses them marked; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        label = name
        for threshold in THRESHOLDS:
            res = resolution_at(frequency, curve, threshold)
            label += f", {threshold:g}: {res:.2f} Å"
            ax.axvline(1 / res, color="0.6", lw=0.6, ls=":")
        ax.plot(frequency, curve, lw=1.5, label=label)
    for threshold, style in zip(THRESHOLDS, ("--", "-.")):
        ax.axhline(threshold, color="k", lw=0.8, ls=style)
        ax.text(frequency[-1], threshold, f" {threshold:g}", va="center", fontsize=8)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.set_xlim(0, frequency[-1])
    ticks = ax.get_xticks()
    ax.set_xticks(ticks, [f"{t:.3f}\n{1 / t:.1f} Å" if t > 0 else "0" for t in ticks])
    ax.set_xlim(0, frequency[-1])
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def reconstruction_paths(output: str | Path, halves: bool = True) -> dict[str, Path]:
    """The files ``write_reconstruction`` writes for the map ``output``: the map and, with
    half maps, ``STEM_half1.mrc``, ``STEM_half2.mrc``, ``STEM_fsc.tsv`` and ``STEM_fsc.png``
    beside it (named after the map, so reconstructions into one folder do not collide)."""
    output = Path(output)
    paths = {"map": output}
    if halves:
        stem = output.parent / (output.stem if output.suffix else output.name)
        for key, suffix in (
            ("half1", "_half1.mrc"), ("half2", "_half2.mrc"),
            ("fsc_tsv", "_fsc.tsv"), ("fsc_png", "_fsc.png"),
        ):  # fmt: skip
            paths[key] = stem.with_name(stem.name + suffix)
    return paths


def write_reconstruction(result: Reconstruction, output: str | Path) -> dict[str, Path]:
    """Write the map to ``output`` (MRC with voxel size and origin) and, with half maps,
    the half maps and the FSC curves beside it (``reconstruction_paths``). Returns the paths."""
    paths = reconstruction_paths(output, result.half_maps is not None)
    write_map(paths["map"], result.volume, result.voxel_size, result.origin)
    if result.half_maps is not None:
        for i, half in enumerate(result.half_maps, 1):
            write_map(paths[f"half{i}"], half, result.voxel_size, result.origin)
        curves = {"unmasked": result.fsc}
        if result.fsc_masked is not None:
            curves["masked"] = result.fsc_masked
        fsc_table(result.frequency, curves, paths["fsc_tsv"])
        fsc_plot(result.frequency, curves, paths["fsc_png"], "half-map FSC")
    return paths


def model_vs_data_fsc(
    particles: ParticleTable | ParticleDataset,
    model_map: np.ndarray,
    voxel_size: float,
    origin,
    indices=None,
    output_dir: str | Path | None = None,
    name: str = "state",
    title: str = "",
    invert_contrast: bool = False,
    device=None,
    progress: bool = True,
    **kwargs,
) -> dict:
    """Reconstruct the particles ``indices`` (half sets, as ``reconstruct``) on the grid of
    ``model_map`` (a model's map, (D, D, D) with ``voxel_size`` and ``origin`` in Å: its
    centre voxel is the rotation centre; the images are Fourier-cropped to D) and compute
    the FSC between the data map and the model map (model-vs-data FSC, the check of model
    bias) beside the half-map FSC.

    With ``output_dir``, writes ``NAME_data.mrc`` and the curves ``NAME_fsc.tsv``/``.png``.
    Returns a dict: ``particles``, ``half_sizes``, ``frequency``, ``fsc_model``,
    ``fsc_half``, ``resolution_model_0.5``, ``resolution_half_0.143``, ``volume`` (the data
    map) and ``files`` (the paths written).
    """
    model_map = np.asarray(model_map, dtype=np.float32)
    size = model_map.shape[0]
    if model_map.ndim != 3 or model_map.shape != (size,) * 3:
        raise InputError(f"model map of shape {model_map.shape}: expected a cube")
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    center = origin + (size // 2) * voxel_size
    box = None if isinstance(particles, ParticleDataset) else size
    result = reconstruct(
        particles, indices=indices, box=box, halves=True, invert_contrast=invert_contrast,
        rotation_center=center, device=device, progress=progress, **kwargs,
    )  # fmt: skip
    if result.volume.shape != model_map.shape:
        raise InputError(
            f"model map of shape {model_map.shape}; the reconstruction is {result.volume.shape}"
        )
    if abs(result.voxel_size - voxel_size) > 1e-3 * voxel_size:
        raise InputError(
            f"model map of voxel size {voxel_size:g} Å, the particles' (at box {size}) is "
            f"{result.voxel_size:g} Å"
        )
    frequency, fsc_model = fourier_shell_correlation(result.volume, model_map, voxel_size)
    files: dict[str, Path] = {}
    if output_dir is not None:
        out = Path(output_dir)
        files["map"] = write_map(out / f"{name}_data.mrc", result.volume, voxel_size, origin)
        curves = {"data vs model": fsc_model, "half maps": result.fsc}
        files["fsc_tsv"] = fsc_table(frequency, curves, out / f"{name}_fsc.tsv")
        files["fsc_png"] = fsc_plot(
            frequency, curves, out / f"{name}_fsc.png", title or f"{name}: model vs data"
        )
    return {
        "particles": result.n_particles,
        "half_sizes": result.half_sizes,
        "frequency": frequency,
        "fsc_model": fsc_model,
        "fsc_half": result.fsc,
        "resolution_model_0.5": resolution_at(frequency, fsc_model, 0.5),
        "resolution_half_0.143": result.resolution(0.143),
        "volume": result.volume,
        "files": files,
    }


def state_model_fsc(
    analysis_dir: str | Path,
    dataset_dir=None,
    box: int | None = None,
    invert_contrast: bool = False,
    output_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    **kwargs,
) -> list[dict]:
    """Model-vs-data FSC of every state of an analysis folder.

    For each ``particles_state_K.star`` with a ``state_K.mrc`` (the map of the state's
    decoded model, written by ``cryomotion analyze``) in ``analysis_dir``: reconstruct the
    state's particles (half sets, as ``reconstruct``), write ``state_K_data.mrc`` and the
    curves ``state_K_fsc.tsv``/``.png`` into ``output_dir`` (default ``analysis_dir``), and
    compute the FSC between the data map and the model map (both at the model map's grid:
    its origin gives the rotation centre). Returns one dict per state: ``state``,
    ``particles``, ``frequency``, ``fsc_model`` (data vs model), ``fsc_half`` (half maps),
    the 0.143/0.5 resolutions and the files written.
    """
    from cryomotion.data.star import read_star

    folder = Path(analysis_dir)
    out = folder if output_dir is None else Path(output_dir)
    results = []
    stars = sorted(
        folder.glob("particles_state_*.star"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
    )
    for star in stars:
        k = int(star.stem.rsplit("_", 1)[1])
        model_path = folder / f"state_{k}.mrc"
        if not model_path.is_file():
            continue
        with mrcfile.open(model_path, permissive=True) as mrc:
            model_map = np.asarray(mrc.data, dtype=np.float32)
            voxel = float(mrc.voxel_size.x)
            origin = np.array([float(mrc.header.origin[a]) for a in "xyz"])
        table = read_star(star, dataset_dir=dataset_dir)
        size = box or table.box_size
        if model_map.shape != (size,) * 3:
            raise InputError(
                f"{model_path}: map of shape {model_map.shape}; the reconstruction is "
                f"{size}³ (pass box={model_map.shape[0]})"
            )
        entry = model_vs_data_fsc(
            table, model_map, voxel, origin, output_dir=out, name=f"state_{k}",
            title=f"state {k}: model vs data", invert_contrast=invert_contrast,
            device=device, progress=progress, **kwargs,
        )  # fmt: skip
        entry.pop("volume")
        results.append({"state": k, **entry})
    return results

"""Simulated particle datasets with ground truth, streamed to disk in chunks."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from cryomotion import __version__
from cryomotion.atomic_write import atomic_path
from cryomotion.data.particles import ParticleTable
from cryomotion.data.stack import STACK_DTYPES, StackWriter
from cryomotion.data.star import write_star
from cryomotion.errors import InputError
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.simulate.conformations import (
    frame_weights,
    lognormal_defocus,
    uniform_rotations,
)
from cryomotion.structure.io import fits_pdb, write_models
from cryomotion.structure.model import AtomicModel

log = logging.getLogger(__name__)

# what simulate_dataset writes into its folder, the stack (the slowest) first; with
# ``images_per_stack`` the stack is several files, particles_000.mrcs, particles_001.mrcs, ...
DATASET_FILES = (
    "particles.mrcs",
    "particles.star",
    "reference.pdb",
    "reference.cif",
    "ground_truth.npz",
    "simulation.yaml",
)


@dataclass
class SimulationConfig:
    """Settings of a simulated dataset (lengths in Å, angles in degrees)."""

    n_particles: int = 1000
    box: int = 64
    pixel_size: float = 1.5
    snr: float = 0.01  # linear; math.inf for clean images
    distribution: str = "uniform"
    seed: int = 0
    defocus_mean: float = 10000.0  # Å (seed 000: log-normal, mean 1 µm, sd 0.3 µm)
    defocus_std: float = 3000.0
    astigmatism: float = 0.0  # Å, |defocus_u - defocus_v|, random angle
    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    b_factor: float = 0.0  # Å²
    shift_std: float = 2.0  # Å, per axis, Gaussian
    chunk_size: int = 256
    stack_dtype: str = "float32"  # or "float16" (MRC mode 12, half the disk space)
    images_per_stack: int = 0  # images per .mrcs file; 0: one file, particles.mrcs
    noise_pilot: int = 256  # images used to measure the signal variance that sets the noise


def stack_names(n_particles: int, images_per_stack: int) -> list[str]:
    """The stack files of a simulated dataset: ``particles.mrcs``, or with
    ``images_per_stack`` K > 0 and more than K particles ``particles_000.mrcs``,
    ``particles_001.mrcs``, ... (at least three digits) holding K images each, the last
    the rest."""
    if images_per_stack <= 0 or n_particles <= images_per_stack:
        return ["particles.mrcs"]
    count = math.ceil(n_particles / images_per_stack)
    digits = max(3, len(str(count - 1)))
    return [f"particles_{k:0{digits}d}.mrcs" for k in range(count)]


def old_stacks(output_dir: str | Path) -> list[Path]:
    """Stack files of an earlier simulated dataset in ``output_dir`` (see ``stack_names``)."""
    output_dir = Path(output_dir)
    found = [output_dir / "particles.mrcs"] + sorted(output_dir.glob("particles_[0-9]*.mrcs"))
    return [path for path in found if path.is_file() or path.is_symlink()]


def place_in_box(frames: np.ndarray, reference: np.ndarray, box: int, pixel_size: float):
    """Translate (frames, atoms, 3) so the reference centroid sits at the box centre.

    Simulated data has no consensus map; this puts the models where a model docked into
    the consensus map of a box-``box`` dataset would be: centroid at (box//2)·pixel_size.
    """
    offset = (box // 2) * pixel_size - np.asarray(reference).mean(axis=0)
    return frames + offset


def _check_fits(frames: np.ndarray, box: int, pixel_size: float) -> None:
    center = (box // 2) * pixel_size
    radius = np.linalg.norm(frames - center, axis=-1).max()
    half_width = (box // 2) * pixel_size
    if radius > half_width:
        log.warning(
            "the molecule reaches %.1f Å from the rotation centre but the box half-width is "
            "%.1f Å: projections will wrap around; use a larger --box or --pixel-size",
            radius,
            half_width,
        )


def simulate_dataset(
    reference: AtomicModel,
    frames: np.ndarray,
    config: SimulationConfig,
    output_dir: str | Path,
    weights: np.ndarray | None = None,
    command_line: str = "",
    progress: bool = True,
) -> dict[str, Path]:
    """Simulate particles of the conformations ``frames`` (frames, atoms, 3) in Å.

    The frames are placed in the box frame (``place_in_box``) and each particle gets a
    frame drawn from ``config.distribution`` (or ``weights``), a uniform random pose, a
    Gaussian shift, a log-normal defocus and white noise at ``config.snr`` (see
    docs/conventions.md). Writes into ``output_dir``: ``particles.mrcs`` (or several
    stacks, see ``stack_names``; ``config.stack_dtype`` float32 or float16), ``particles.star``
    (RELION 3.1), ``ground_truth.npz``, ``reference.pdb`` (the
    reference model in the box frame; ``reference.cif`` if PDB cannot hold it) and
    ``simulation.yaml``. Memory stays bounded: images are rendered and written a chunk at a
    time; only per-particle metadata (O(N)) is held. Deterministic for a seed (whatever
    the stack layout). A dataset already in ``output_dir`` is
    removed first, so an interrupted simulation never leaves old files beside new ones.
    Returns the paths written (``stack`` the first stack; with several, ``stacks`` a glob).
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[1:] != (reference.n_atoms, 3):
        raise InputError(
            f"conformations of shape {frames.shape} do not match the reference model's "
            f"{reference.n_atoms} atoms"
        )
    if config.n_particles < 1 or config.box < 8 or config.pixel_size <= 0:
        raise InputError("expected --particles >= 1, --box >= 8 and --pixel-size > 0")
    if config.stack_dtype not in STACK_DTYPES:
        raise InputError(
            f"--stack-dtype {config.stack_dtype}: expected one of {', '.join(STACK_DTYPES)}"
        )
    if config.images_per_stack < 0:
        raise InputError(f"--images-per-stack {config.images_per_stack}: expected >= 0")
    if not (config.snr > 0):
        raise InputError(f"--snr {config.snr}: expected a positive SNR, or inf for clean images")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in reversed(DATASET_FILES):  # the completion marks first
        (output_dir / name).unlink(missing_ok=True)
    for path in old_stacks(output_dir):
        path.unlink()
    n = config.n_particles
    rng = np.random.default_rng(config.seed)

    frames = place_in_box(frames, reference.coords, config.box, config.pixel_size)
    _check_fits(frames, config.box, config.pixel_size)
    probabilities = frame_weights(
        "weights" if weights is not None else config.distribution, len(frames), weights
    )
    frame_index = rng.choice(len(frames), size=n, p=probabilities)
    rotations = uniform_rotations(n, rng)
    shifts = rng.normal(0.0, config.shift_std, size=(n, 2))
    defocus = lognormal_defocus(n, config.defocus_mean, config.defocus_std, rng)
    half_astigmatism = 0.5 * config.astigmatism
    ctf = np.zeros((n, 8))
    ctf[:, 0] = defocus + half_astigmatism
    ctf[:, 1] = defocus - half_astigmatism
    ctf[:, 2] = rng.uniform(0.0, 180.0, size=n) if config.astigmatism else 0.0
    ctf[:, 3] = config.voltage
    ctf[:, 4] = config.spherical_aberration
    ctf[:, 5] = config.amplitude_contrast
    ctf[:, 7] = config.b_factor

    renderer = AtomRenderer.from_model(reference, config.box, config.pixel_size)
    frames_t = torch.as_tensor(frames, dtype=torch.float32)

    def render(indices: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return renderer(
                frames_t[torch.as_tensor(frame_index[indices])],
                torch.as_tensor(rotations[indices], dtype=torch.float32),
                torch.as_tensor(shifts[indices], dtype=torch.float32),
                torch.as_tensor(ctf[indices], dtype=torch.float32),
            )

    noise_std = 0.0
    if math.isfinite(config.snr):
        pilot = render(np.arange(min(n, config.noise_pilot)))
        signal_variance = pilot.flatten(1).var(dim=1).mean().item()
        noise_std = math.sqrt(signal_variance / config.snr)
    generator = torch.Generator().manual_seed(config.seed)

    names = stack_names(n, config.images_per_stack)
    per_stack = n if len(names) == 1 else config.images_per_stack
    stack_paths = [output_dir / name for name in names]
    bar = tqdm(total=n, unit="img", desc="simulate", disable=not progress)
    for k, stack_path in enumerate(stack_paths):
        first, last = k * per_stack, min(n, (k + 1) * per_stack)
        with StackWriter(
            stack_path, last - first, config.box, config.pixel_size, dtype=config.stack_dtype
        ) as writer:
            for start in range(first, last, config.chunk_size):
                indices = np.arange(start, min(last, start + config.chunk_size))
                images = render(indices)
                if noise_std:
                    images = images + noise_std * torch.randn(images.shape, generator=generator)
                writer.write(start - first, images.numpy())
                bar.update(len(indices))
    bar.close()

    # one path object per stack, shared by its particles' rows (O(N) pointers, not strings)
    resolved = np.array([str(path.resolve()) for path in stack_paths], dtype=object)
    particle_stack = np.arange(n) // per_stack
    table = ParticleTable(
        rotations=rotations,
        shifts=shifts,
        ctf=ctf,
        pixel_size=np.full(n, config.pixel_size),
        box_size=config.box,
        image_files=resolved[particle_stack],
        image_indices=np.arange(n) - particle_stack * per_stack,
        optics_group=np.ones(n, dtype=np.int64),
        source=str(output_dir / "particles.star"),
    )
    paths = {
        "stack": stack_paths[0],  # the first of several: see "stacks"
        **({"stacks": output_dir / "particles_*.mrcs"} if len(stack_paths) > 1 else {}),
        "star": write_star(output_dir / "particles.star", table),
        "reference": write_models(
            output_dir / ("reference.pdb" if fits_pdb(reference) else "reference.cif"),
            reference,
            frames[0],
        ),
        "ground_truth": output_dir / "ground_truth.npz",
        "config": output_dir / "simulation.yaml",
    }
    positions = np.linspace(0.0, 1.0, len(frames))
    with atomic_path(paths["ground_truth"]) as tmp:
        np.savez(
            tmp,
            frame_index=frame_index,
            frame_position=positions[frame_index],
            frame_probability=probabilities,
            rotations=rotations,
            shifts=shifts,
            ctf=ctf,
            frame_coords=frames,
            noise_std=np.float64(noise_std),
        )
    with atomic_path(paths["config"]) as tmp:
        record = {"version": __version__, "command": command_line, **asdict(config)}
        record["snr"] = "inf" if math.isinf(config.snr) else config.snr
        tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    return paths

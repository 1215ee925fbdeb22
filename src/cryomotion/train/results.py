"""A finished training run read back, and its per-particle atomic models.

Only the run folder is needed: its config, its copy of the reference model, what the
system prepared (e.g. ``modes.npz``), the last checkpoint (for a deformation with learned
parameters) and ``latents.npz``.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cryomotion.atomic_write import atomic_path
from cryomotion.data.particles import ParticleTable
from cryomotion.data.readers import read_particles
from cryomotion.deform.base import Deformation
from cryomotion.errors import InputError
from cryomotion.geometry.superposition import superpose_onto
from cryomotion.models.motion_model import scale_motion
from cryomotion.models.pose import PoseMode
from cryomotion.npz_arrays import INTEGER, Array, load_arrays, missing_keys
from cryomotion.structure.io import write_models
from cryomotion.structure.model import AtomicModel
from cryomotion.systems.registry import all_systems, get_system
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.config import RunConfig, load_config, with_system_defaults
from cryomotion.train.run_dir import RunPaths, read_run_reference

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".pdb", ".cif", ".mmcif")


@dataclass(frozen=True, eq=False)
class TrainedRun:
    """What a run learned.

    Attributes
    ----------
    paths : the run folder's files.
    config : its settings.
    reference : the reference model (atoms in the order every output uses).
    latents : (N, d) per-particle latents (for ``nma`` the mode ``amplitudes``, Å).
    shifts : (N, 2) Å; particle_index : (N,); is_test : (N,) bool.
    deformation : latents (B, d) -> coords (B, atoms, 3) Å, on the CPU, in eval mode.
    rotations : (N, 3, 3) the poses the run rendered with (None for runs of cryomotion 0.1,
        which used the particle file's).
    alignment : for a run that aligned a subset (DeepHEMNMA), ``aligned`` (N,) bool,
        ``misfit`` (N,) and ``regressed_latents`` (N, d) from ``latents.npz``; else {}.
    motion_scale : α of ``train.motion_scale``: every decoded model is x_ref + α (x(z) −
        x_ref) (1 for runs written before it).
    """

    paths: RunPaths
    config: RunConfig
    reference: AtomicModel
    latents: np.ndarray
    shifts: np.ndarray
    particle_index: np.ndarray
    is_test: np.ndarray
    deformation: Deformation
    rotations: np.ndarray | None = None
    alignment: dict[str, np.ndarray] = field(default_factory=dict)
    motion_scale: float = 1.0

    @property
    def n_particles(self) -> int:
        return len(self.particle_index)


def run_particles(config: RunConfig) -> ParticleTable:
    """The particle table a run's ``config`` trained on (its data section's files and
    overrides); a run that infers its poses accepts a RELION file without angles."""
    data = config.data
    return read_particles(
        data.particles,
        poses=data.poses,
        ctf=data.ctf,
        pixel_size=data.pixel_size,
        dataset_dir=data.dataset_dir,
        amplitude_contrast=data.amplitude_contrast,
        voltage=data.voltage,
        spherical_aberration=data.spherical_aberration,
        require_angles=config.model.pose_mode != PoseMode.INFER.value,
    )


def load_run(run_dir: str | Path, latents_path: str | Path | None = None) -> TrainedRun:
    """Read a finished run; ``InputError`` if the folder lacks what a finished run holds.
    ``latents_path``: another latents file of the run to read instead of its own (a
    polish at inference, ``train.run.polish_run``)."""
    paths = RunPaths(Path(run_dir))
    latents_file = Path(latents_path) if latents_path is not None else paths.latents
    if not paths.config.is_file():
        raise InputError(f"{run_dir}: no config.yaml (expected a folder written by 'train')")
    config = with_system_defaults(load_config(paths.config))
    system = get_system(config.system)
    if not latents_file.is_file():
        raise InputError(
            f"{latents_file}: missing (the run has not finished; resume it with --resume)"
        )
    # runs of cryomotion 0.1 stored the latents under a system-dependent key, no rotations
    key = "latents" if "latents" not in missing_keys(latents_file, ["latents"]) else None
    key = key or system.legacy_latent_key
    data = load_arrays(
        latents_file,
        {
            key: ("particles", None),
            "shifts": ("particles", 2),
            "particle_index": Array(("particles",), INTEGER),
            "is_test": ("particles",),
        },
        optional={
            "rotations": ("particles", 3, 3),
            "aligned": ("particles",),
            "misfit": ("particles",),
            "regressed_latents": ("particles", None),
            "motion_scale": (),
        },
        what="a latents file written by 'cryomotion train'",
    )
    latents, shifts = data[key], data["shifts"]
    rotations = data.get("rotations")
    index, is_test = data["particle_index"], data["is_test"].astype(bool)
    if len(index) and index.min() < 0:
        raise InputError(
            f"{latents_file}: particle_index holds {int(index.min())} (expected 0-based "
            "indices of the particles)"
        )
    if latents.shape[1] != config.model.latent_dim:
        raise InputError(
            f"{latents_file}: {key} has {latents.shape[1]} columns, the run's "
            f"config.yaml latent_dim {config.model.latent_dim} (expected the same)"
        )
    reference = read_run_reference(paths, config.reference)
    deformation = system.build_deformation(
        reference, config.model.latent_dim, config.deformation, paths.root
    )
    if paths.checkpoint.is_file():
        state = load_checkpoint(paths.checkpoint).get("model")
        if not isinstance(state, dict):
            raise InputError(f"{paths.checkpoint}: no model state (expected a training checkpoint)")
        prefix = "deformation."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            deformation.load_state_dict(own)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise InputError(
                f"{paths.checkpoint}: does not fit the run's {config.system} deformation ({first})"
            ) from None
    elif learned := [name for name, _ in deformation.named_parameters()]:
        # without them the rebuilt deformation would silently use its initial values
        shown = ", ".join(learned[:3]) + (", ..." if len(learned) > 3 else "")
        raise InputError(
            f"{paths.checkpoint}: missing; it holds the {config.system} deformation's learned "
            f"parameters ({shown}) and the models cannot be rebuilt without it (expected the "
            "run's checkpoint, e.g. copy the whole run folder)"
        )
    deformation.eval()
    alignment = {
        key: data[key] for key in ("aligned", "misfit", "regressed_latents") if key in data
    }
    if "aligned" in alignment:
        alignment["aligned"] = alignment["aligned"].astype(bool)
    motion_scale = float(data.get("motion_scale", 1.0))  # runs before it: 1
    if not 0.0 <= motion_scale <= 1.0:
        raise InputError(
            f"{latents_file}: motion_scale {motion_scale} (expected a value in [0, 1])"
        )
    return TrainedRun(
        paths, config, reference, latents, shifts, index, is_test, deformation, rotations,
        alignment, motion_scale,
    )  # fmt: skip


@torch.no_grad()
def decode_latents(run: TrainedRun, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, P, 3) float32 Å: the run's deformation of any latents (n, d) or (d,) — the one
    decoding of latents into points that export and analysis share (superposed onto the
    reference for a run with refined poses, as it rendered them)."""
    latents = np.atleast_2d(np.asarray(latents, dtype=np.float32))
    # with refined poses the run rendered its models superposed onto the reference
    # (models.motion_model); its models are given in that frame too
    superpose = run.config.model.pose_mode == "refine"
    rest = run.deformation.rest().points
    parts = []
    for start in range(0, len(latents), batch_size):
        points = run.deformation.atoms(torch.as_tensor(latents[start : start + batch_size]))
        points = superpose_onto(points, rest) if superpose else points
        if run.deformation.points_are_atoms:  # as the run rendered them
            points = scale_motion(points, rest, run.motion_scale)
        parts.append(points.numpy())
    if not parts:
        return np.zeros((0, run.reference.n_atoms, 3), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def particle_coords(run: TrainedRun, indices: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(n, atoms, 3) float32 Å: the deformed reference model of each particle in ``indices``."""
    indices = np.asarray(indices, dtype=np.int64)
    return decode_latents(run, run.latents[indices], batch_size)


def _write_npz_streamed(path: Path, run: TrainedRun, indices: np.ndarray, batch_size: int) -> None:
    """An .npz with ``coords`` (n, atoms, 3) float32 and ``indices`` (n,), written batch by
    batch (memory stays one batch for any number of particles)."""
    shape = (len(indices), run.reference.n_atoms, 3)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
        "fortran_order": False,
        "shape": shape,
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("coords.npy", "w", force_zip64=True) as handle:
            np.lib.format.write_array_header_2_0(handle, header)
            for start in range(0, len(indices), batch_size):
                coords = particle_coords(run, indices[start : start + batch_size], batch_size)
                handle.write(np.ascontiguousarray(coords, dtype="<f4").tobytes())
        with zf.open("indices.npy", "w") as handle:
            np.lib.format.write_array(handle, np.asarray(indices, dtype=np.int64))


def export_models(
    run: TrainedRun | str | Path,
    output: str | Path,
    indices: np.ndarray | None = None,
    batch_size: int = 256,
) -> Path:
    """Write the atomic models of the particles ``indices`` (default: all) of a run
    (a ``TrainedRun`` or its folder).

    ``output`` ending in .pdb, .cif or .mmcif: a multi-model file, one model per particle
    in the order of ``indices``; ending in .npz: ``coords`` (n, atoms, 3) float32 Å and
    ``indices`` (n,). Atoms are the reference model's, in its order; coordinates are in
    the reference model's frame. Written atomically.
    """
    run = run if isinstance(run, TrainedRun) else load_run(run)
    output = Path(output)
    indices = np.arange(run.n_particles) if indices is None else np.asarray(indices, np.int64)
    if len(indices) == 0:
        raise InputError("no particles selected (expected at least one index)")
    if indices.min() < 0 or indices.max() >= run.n_particles:
        raise InputError(f"particle index out of range (the run has {run.n_particles})")
    suffix = output.suffix.lower()
    if suffix == ".npz":
        with atomic_path(output) as tmp:
            _write_npz_streamed(tmp, run, indices, batch_size)
    elif suffix in MODEL_SUFFIXES:
        if suffix == ".pdb" and len(indices) > 9999:
            raise InputError(
                f"{output}: {len(indices)} models, a PDB file holds at most 9999 (write .cif or "
                ".npz, or select fewer particles with --indices)"
            )
        if len(indices) > 10000:
            log.warning(
                "writing %d models into one %s file; .npz is far more compact", len(indices), suffix
            )
        write_models(output, run.reference, particle_coords(run, indices, batch_size))
    else:
        raise InputError(f"{output}: unknown format (expected .pdb, .cif, .mmcif or .npz)")
    return output


# -- an ensemble from the prior (a VAE's generative model; seed 002's EMD-RMSD) ---------


def prior_latents(run: TrainedRun, n_samples: int, seed: int = 0) -> np.ndarray:
    """(n, d) float32 draws of the latent prior N(0, I) of a VAE run (``InputError`` for a
    system that has no prior)."""
    system = get_system(run.config.system)
    if not system.variational:
        raise InputError(
            f"the {system.name} system has no latent prior to sample (--prior-samples needs a "
            "VAE: " + ", ".join(s.name for s in all_systems() if s.variational) + ")"
        )
    if int(n_samples) < 1:
        raise InputError(f"--prior-samples {n_samples}: expected at least 1")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((int(n_samples), run.config.model.latent_dim)).astype(np.float32)


def export_prior_samples(
    run: TrainedRun | str | Path,
    output: str | Path,
    n_samples: int,
    seed: int = 0,
    batch_size: int = 256,
) -> Path:
    """Write ``n_samples`` models decoded from latents drawn from the prior N(0, I): a
    multi-model .pdb/.cif, or an .npz with ``coords`` (n, atoms, 3) float32 Å and
    ``latents`` (n, d). The ensemble the run's generative model stands for (seed 002
    compares it with the true ensemble by EMD-RMSD)."""
    run = run if isinstance(run, TrainedRun) else load_run(run)
    output = Path(output)
    latents = prior_latents(run, n_samples, seed)
    suffix = output.suffix.lower()
    if suffix not in (".npz", *MODEL_SUFFIXES):
        raise InputError(f"{output}: unknown format (expected .pdb, .cif, .mmcif or .npz)")
    if suffix == ".pdb" and len(latents) > 9999:
        raise InputError(f"{output}: {len(latents)} models, a PDB file holds at most 9999")
    coords = decode_latents(run, latents, batch_size)
    if suffix == ".npz":
        with atomic_path(output) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, coords=coords, latents=latents)
    else:
        write_models(output, run.reference, coords)
    return output

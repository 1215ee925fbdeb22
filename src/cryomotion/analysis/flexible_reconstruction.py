"""3DFlex's validation (seed 003, "High resolution refinement and validation"): half maps
of the canonical density under the frozen flow, and their FSC beside the rigid one.

The flow generator and every particle's latent are frozen. For each half set, a canonical
density starting from zero — pseudo-atoms on a grid of the particles' pixel size at their
full box, inside the run's consensus mask — is fitted to that half's images by full-batch
L-BFGS (the seed: minibatch gradients were too noisy for this): each L-BFGS iteration
takes the exact gradient of Σ_i ‖y_i − C_i P_i D(f(z_i), V)‖² over the whole half set.
The model is linear in V, so this is a least-squares problem that L-BFGS solves well.
The two half maps are compared by FSC, globally and in the consensus mask, beside the
half-map FSC of the rigid reconstruction (direct Fourier inversion) of the same particles
split the same way. Correlation beyond the training box's Nyquist is signal recovered in
common by both halves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from cryomotion.analysis.flex_maps import pseudo_atom_map
from cryomotion.analysis.maps import write_map
from cryomotion.analysis.metrics import fourier_shell_correlation, resolution_at
from cryomotion.analysis.reconstruction import fsc_plot, fsc_table, reconstruct, split_halves
from cryomotion.data.dataset import ParticleDataset
from cryomotion.data.poses import resolve_rotation_center
from cryomotion.deform.mesh import sample_map, soft_mask, threshold_mask, voxel_centers
from cryomotion.errors import InputError
from cryomotion.imaging.renderer import AtomRenderer
from cryomotion.models.intensity import IntensityScale
from cryomotion.models.latent_table import LatentTable
from cryomotion.models.motion_model import MotionModel
from cryomotion.systems.flex import canonical_grid, read_prepared
from cryomotion.train.checkpoint import load_checkpoint
from cryomotion.train.results import TrainedRun, load_run, run_particles

log = logging.getLogger(__name__)


@dataclass
class FlexibleReconstruction:
    """Half maps [z, y, x] of the canonical density (voxel = pixel size, ``origin`` Å, the
    rigid reconstruction's grid), the mask, and FSC curves per shell (``frequency`` 1/Å):
    flexible and rigid, global and masked; ``losses`` the final data term per half."""

    half_maps: tuple[np.ndarray, np.ndarray]
    rigid_half_maps: tuple[np.ndarray, np.ndarray]
    mask: np.ndarray
    voxel_size: float
    origin: np.ndarray
    frequency: np.ndarray
    curves: dict[str, np.ndarray]
    training_nyquist: float
    losses: tuple[float, float]

    def resolutions(self, threshold: float = 0.143) -> dict[str, float]:
        return {
            name: resolution_at(self.frequency, c, threshold) for name, c in self.curves.items()
        }


def masked_fsc(
    map_a: np.ndarray, map_b: np.ndarray, mask: np.ndarray, voxel_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """FSC of two maps in a soft ``mask``, each map's weighted mean inside the mask taken
    out first (a shared offset times the mask would otherwise correlate at every
    frequency): (frequency 1/Å, FSC) per shell."""
    weight = float(mask.sum())

    def centred(volume: np.ndarray) -> np.ndarray:
        return (volume - float((volume * mask).sum()) / weight) * mask

    return fourier_shell_correlation(centred(map_a), centred(map_b), voxel_size)


def _dataset(run: TrainedRun, box: int | None) -> tuple[ParticleDataset, object]:
    data = run.config.data
    table = run_particles(run.config)
    if len(table) != run.n_particles:
        raise InputError(
            f"{data.particles}: {len(table)} particles, the run has {run.n_particles} (expected "
            "the particles it was trained on)"
        )
    return ParticleDataset(table, box=box, invert_contrast=data.invert_data), table


def _model(run: TrainedRun, dataset: ParticleDataset, center, device) -> MotionModel:
    """The frozen flow and latents with a zero canonical density at the pixel size."""
    prepared = read_prepared(run.paths.root)
    density, voxel = prepared["density"].astype(np.float64), float(prepared["density_voxel"])
    origin = prepared["density_origin"]
    threshold = run.config.deformation.threshold_fraction * float(density.max())
    spacing = dataset.pixel_size
    points, _ = canonical_grid(density, voxel, origin, spacing, threshold)
    deformation = run.deformation.with_canonical(points, np.zeros(len(points)), spacing / 2)
    deformation.rigidity_weight = 0.0  # the flow is frozen: no regulariser to evaluate
    deformation.generator.requires_grad_(False)
    table = LatentTable(run.n_particles, run.latents.shape[1], noise_std=0.0, init=run.latents)
    renderer = AtomRenderer(deformation.scatterers(), dataset.box, dataset.pixel_size, center)
    intensity = IntensityScale(dataset.n_optics_groups, run.config.model.intensity_scale)
    state = load_checkpoint(run.paths.checkpoint)["model"]
    own = {k[len("intensity.") :]: v for k, v in state.items() if k.startswith("intensity.")}
    if own:
        intensity.load_state_dict(own)
    model = MotionModel(table, deformation, renderer, intensity).to(device).eval()
    log.info("flexible reconstruction: %d pseudo-atoms at %.3g Å", len(points), spacing)
    return model


def fit_half(
    model: MotionModel,
    dataset: ParticleDataset,
    indices: np.ndarray,
    iterations: int,
    batch_size: int,
    device,
    progress: bool = True,
) -> tuple[np.ndarray, float]:
    """Full-batch L-BFGS of the canonical amplitudes from zero on ``indices``; returns
    (amplitudes (P,), final mean squared error per pixel)."""
    parameter = model.deformation.canonical
    with torch.no_grad():
        parameter.zero_()
    loader = DataLoader(Subset(dataset, np.asarray(indices).tolist()), batch_size=batch_size)
    n = len(indices)
    optimizer = torch.optim.LBFGS(
        [parameter], lr=1.0, max_iter=iterations, history_size=20,
        line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14,
    )  # fmt: skip
    bar = tqdm(total=iterations, unit="pass", disable=not progress, desc="L-BFGS")
    history: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        total = torch.zeros((), device=device)
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            output = model(batch)
            error = (output.images[:, 0] - output.measured).square().flatten(1).mean(1).sum() / n
            error.backward()
            total += error.detach()
        bar.update(1)
        history.append(float(total))
        return total

    optimizer.step(closure)
    bar.close()
    log.info("L-BFGS: %d passes, loss %.6g -> %.6g", len(history), history[0], min(history))
    return model.deformation.amplitudes.detach().cpu().double().numpy(), min(history)


def flexible_half_maps(
    run_dir: str | Path,
    box: int | None = None,
    iterations: int = 30,
    batch_size: int = 64,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> FlexibleReconstruction:
    """Half maps of the canonical density of the 3DFlex run in ``run_dir`` at ``box``
    (default the particles' own: the full box), their FSC and the rigid reconstruction's
    (module docstring)."""
    run = load_run(run_dir)
    if run.config.system != "flex":
        raise InputError(f"{run_dir}: a {run.config.system} run (--flexible needs a 3DFlex run)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset, table = _dataset(run, box)
    center = resolve_rotation_center(
        run.config.data.rotation_center, run.reference, table.box_size, table.single_pixel_size
    )
    model = _model(run, dataset, center, device)
    indices = np.arange(run.n_particles)
    labels = split_halves(table, indices, seed)
    amplitudes, losses = [], []
    for half in (0, 1):
        fitted, loss = fit_half(
            model, dataset, indices[labels == half], iterations, batch_size, device, progress
        )
        amplitudes.append(fitted)
        losses.append(loss)
        log.info("half %d: %d particles, final loss %.6g", half + 1, (labels == half).sum(), loss)
    voxel = dataset.pixel_size
    size = dataset.box
    origin = np.asarray(center, dtype=np.float64) - (size // 2) * voxel
    points = model.deformation.rest().points.detach().cpu().double().numpy()
    halves = []
    for fitted in amplitudes:
        with torch.no_grad():
            model.deformation.canonical.copy_(
                torch.as_tensor(fitted) / model.deformation.amplitude_unit
            )
        halves.append(pseudo_atom_map(model.deformation, points, (size, voxel, origin)))
    prepared = read_prepared(run.paths.root)
    density = prepared["density"].astype(np.float64)
    threshold = run.config.deformation.threshold_fraction * float(density.max())
    consensus_mask = threshold_mask(density, threshold, 1).astype(np.float64)
    grid = voxel_centers((size,) * 3, voxel, origin).reshape(-1, 3)
    inside = sample_map(
        consensus_mask, float(prepared["density_voxel"]), prepared["density_origin"], grid
    )
    mask = soft_mask(inside.reshape(size, size, size) > 0.5)
    rigid = reconstruct(
        dataset, indices, halves=labels, mask=mask, rotation_center=center, seed=seed,
        device=device, progress=progress,
    )  # fmt: skip
    frequency, flexible = fourier_shell_correlation(halves[0], halves[1], voxel)
    _, flexible_masked = masked_fsc(halves[0], halves[1], mask, voxel)
    _, rigid_masked = masked_fsc(rigid.half_maps[0], rigid.half_maps[1], mask, voxel)
    curves = {
        "flexible": flexible,
        "flexible_masked": flexible_masked,
        "rigid": rigid.fsc,
        "rigid_masked": rigid_masked,
    }
    training_box = run.config.data.box or size
    nyquist = 2 * voxel * size / training_box
    return FlexibleReconstruction(
        (halves[0], halves[1]), rigid.half_maps, mask, voxel, origin, frequency, curves,
        nyquist, (losses[0], losses[1]),
    )  # fmt: skip


def write_flexible_reconstruction(result: FlexibleReconstruction, output: str | Path) -> dict:
    """Write ``output``/flexible_half1.mrc, _half2.mrc, rigid_half1/2.mrc, mask.mrc,
    fsc.tsv and fsc.png; returns {name: path}."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {}
    for prefix, maps in (("flexible", result.half_maps), ("rigid", result.rigid_half_maps)):
        for i, volume in enumerate(maps, 1):
            name = f"{prefix}_half{i}"
            paths[name] = write_map(
                output / f"{name}.mrc", volume, result.voxel_size, result.origin
            )
    paths["mask"] = write_map(output / "mask.mrc", result.mask, result.voxel_size, result.origin)
    paths["fsc_tsv"] = fsc_table(result.frequency, result.curves, output / "fsc.tsv")
    paths["fsc_png"] = fsc_plot(
        result.frequency, result.curves, output / "fsc.png",
        f"half-map FSC, 3DFlex vs rigid (training Nyquist {result.training_nyquist:.2f} Å)",
    )  # fmt: skip
    return paths

"""Seed 003, 3DFlex: a canonical density convected by a mesh flow of auto-decoded latents.

``prepare`` builds, once, from the consensus density (``--consensus-map``, e.g. from
``cryomotion reconstruct``, or else the reference model's potential) low-passed to
``lowpass_resolution``: the canonical pseudo-atoms (a grid of ``point_spacing`` Å inside
the density's mask, amplitudes from the low-passed map), the tetrahedral mesh
(``--mesh-spacing``), the optional flow mask and the initial latents (``--init-latents
RUN``); they go to ``RUN/flex.npz`` (and ``RUN/initial_latents.npy``), so the run folder
alone rebuilds the model. The schedule is the seed's: latents fixed, then blocks
alternating the flow (canonical fixed) and the canonical density (flow fixed), the
latents inferred per batch in both, with the band limit rising from ``start_resolution``
by ``frequency_growth`` per phase (frequency marching).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import mrcfile
import numpy as np

from cryomotion.atomic_write import atomic_path
from cryomotion.deform.flow_field import FlowFieldDeformation
from cryomotion.deform.mesh import TetMesh, build_mesh, sample_map, threshold_mask, voxel_centers
from cryomotion.errors import InputError
from cryomotion.imaging.density import scatterer_map
from cryomotion.imaging.scatterers import Scatterers
from cryomotion.models.latent_table import LatentTable
from cryomotion.models.objectives import ReconstructionObjective
from cryomotion.models.schedule import Phase
from cryomotion.npz_arrays import load_arrays
from cryomotion.structure.model import AtomicModel
from cryomotion.systems.registry import InferenceInputs, System, SystemFlag

log = logging.getLogger(__name__)

FLEX_FILE = "flex.npz"
INITIAL_LATENTS_FILE = "initial_latents.npy"
DEFAULT_LATENT_DIM = 2
MAP_MARGIN = 12.0  # Å of empty space around the model in the reference-potential map


@dataclass
class FlexSettings:
    """3DFlex's settings (the ``deformation`` section of the run's config)."""

    consensus_map: str | None = None  # MRC in the model's frame; None: the model's potential
    lowpass_resolution: float = 8.0  # Å: the canonical density starts from the map low-passed
    threshold_fraction: float = 0.1  # mask: low-passed density ≥ this × its maximum
    point_spacing: float = 2.0  # Å: grid of the canonical pseudo-atoms
    point_sigma: float = 0.0  # Å: their Gaussian width (0: half the spacing)
    mesh_spacing: float = 8.0  # Å: lattice of the mesh's vertices
    flow_mask: str | None = None  # MRC: the flow is zero where it is < 0.5
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # flow generator widths
    flow_scale: float = 5.0  # Å per unit of the generator's output
    rigidity_weight: float = 1.0  # λ_rigid on the weighted mean element penalty
    canonical_lr_scale: float = 10.0  # amplitudes' learning rate / the trainer's
    inner_steps: int = 5  # auto-decoder steps per batch
    inner_lr: float = 0.1  # their step, latent units
    predict_steps: int = 30  # steps per particle when latents are written
    noise_std: float = 0.1  # noise injected into z in training renders
    prior_weight: float = 1e-3  # weight of ½‖z‖² against the per-pixel squared error
    init_latents: str | None = None  # a run folder (its latents.npz) to start from
    fixed_latent_epochs: int = 1  # first phase: latents fixed, flow and canonical trained
    block_epochs: int = 2  # then alternating flow / canonical blocks of this length
    start_resolution: float = 12.0  # Å: band limit of the first phase
    frequency_growth: float = 1.3  # band limit × this per phase


# -- the consensus density -----------------------------------------------------------------
def lowpass(volume: np.ndarray, voxel_size: float, resolution: float) -> np.ndarray:
    """A Gaussian low-pass [z, y, x] with gain ½ at 1/``resolution`` (Å)."""
    q = [np.fft.fftfreq(n, d=voxel_size) for n in volume.shape[:2]]
    q_half = np.fft.rfftfreq(volume.shape[2], d=voxel_size)
    q2 = q[0][:, None, None] ** 2 + q[1][None, :, None] ** 2 + q_half[None, None, :] ** 2
    gain = np.exp(-np.log(2.0) * q2 * resolution**2)
    spectrum = np.fft.rfftn(volume) * gain
    return np.fft.irfftn(spectrum, s=volume.shape, axes=(0, 1, 2)).astype(np.float64)


def read_mrc(path: str | Path) -> tuple[np.ndarray, float, np.ndarray]:
    """(volume [z, y, x], voxel size Å, origin (3,) Å) of an MRC map; ``InputError`` if
    it is not a cubic-voxel 3-D map."""
    try:
        with mrcfile.open(path, permissive=True) as mrc:
            if mrc.data is None or mrc.data.ndim != 3:
                raise InputError(f"{path}: expected a 3-D MRC map")
            volume = np.asarray(mrc.data, dtype=np.float64)
            size = mrc.voxel_size
            origin = np.array([float(mrc.header.origin[k]) for k in ("x", "y", "z")])
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable MRC map ({err})") from None
    voxel = float(size.x)
    if not voxel > 0 or not np.allclose([size.y, size.z], voxel, rtol=1e-4):
        raise InputError(f"{path}: voxel size {size}: expected equal positive sizes (Å)")
    return volume, voxel, origin


def reference_potential(reference: AtomicModel, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference model's potential on a cubic grid covering it with ``MAP_MARGIN`` Å
    around: (volume [z, y, x], origin (3,) Å)."""
    low = reference.coords.min(axis=0) - MAP_MARGIN
    high = reference.coords.max(axis=0) + MAP_MARGIN
    origin = np.floor(low / voxel_size) * voxel_size
    box = int(np.ceil((high - origin).max() / voxel_size)) + 1
    box += box % 2
    scatterers = Scatterers.atoms(reference)
    volume = scatterer_map(
        reference.coords,
        scatterers.form_factor_a,
        scatterers.form_factor_b,
        scatterers.type_index,
        box,
        voxel_size,
        origin,
    )
    return volume.astype(np.float64), origin


def consensus_density(
    reference: AtomicModel, settings: FlexSettings
) -> tuple[np.ndarray, float, np.ndarray]:
    """(low-passed consensus density [z, y, x] in renderer units, voxel Å, origin Å).

    A user's map is rescaled so that its integral over the mask equals the reference
    model's total f_e(0) (maps come in arbitrary units; the intensity scale absorbs the
    rest)."""
    scatterers = Scatterers.atoms(reference)
    total = float(scatterers.form_factor_a.sum(1)[scatterers.type_index].sum())
    if settings.consensus_map:
        volume, voxel, origin = read_mrc(settings.consensus_map)
    else:
        voxel = settings.point_spacing / 2
        volume, origin = reference_potential(reference, voxel)
    volume = lowpass(volume, voxel, settings.lowpass_resolution)
    mask = volume >= settings.threshold_fraction * volume.max()
    mass = float(volume[mask].sum()) * voxel**3
    if not mass > 0:
        raise InputError(
            f"{settings.consensus_map or 'the reference potential'}: no positive density in the "
            "mask (expected a map of the particle, positive inside)"
        )
    return volume * (total / mass), voxel, origin


def canonical_grid(
    density: np.ndarray, voxel: float, origin: np.ndarray, spacing: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-atoms on a grid of ``spacing`` Å inside the density's mask (≥ ``threshold``,
    dilated by one spacing): (points (P, 3) Å, amplitudes (P,) = density × spacing³)."""
    mask = threshold_mask(density, threshold, int(np.ceil(spacing / voxel)))
    extent = np.array(density.shape[::-1]) * voxel
    counts = np.floor(extent / spacing).astype(int)
    grid = voxel_centers(tuple(counts[::-1]), spacing, origin).reshape(-1, 3)
    inside = sample_map(mask.astype(np.float64), voxel, origin, grid, order=0) > 0.5
    points = grid[inside]
    amplitudes = np.clip(sample_map(density, voxel, origin, points), 0, None) * spacing**3
    return points, amplitudes


def point_sigma(settings: FlexSettings) -> float:
    return settings.point_sigma if settings.point_sigma > 0 else settings.point_spacing / 2


# -- the recipe ----------------------------------------------------------------------------
def prepare(reference: AtomicModel, latent_dim: int, settings: FlexSettings, run_dir: Path) -> None:
    """Build the canonical density, the mesh, the flow mask and the initial latents into
    ``run_dir`` (module docstring); a no-op when ``flex.npz`` is there."""
    run_dir = Path(run_dir)
    path = run_dir / FLEX_FILE
    if path.is_file():
        return
    if latent_dim < 1:
        raise InputError(f"--latent-dim {latent_dim}: 3DFlex needs at least 1")
    density, voxel, origin = consensus_density(reference, settings)
    threshold = settings.threshold_fraction * float(density.max())
    points, amplitudes = canonical_grid(density, voxel, origin, settings.point_spacing, threshold)
    mesh = build_mesh(density, voxel, origin, threshold, settings.mesh_spacing)
    vertex_mask = np.ones(mesh.n_vertices)
    if settings.flow_mask:
        flow_mask, mask_voxel, mask_origin = read_mrc(settings.flow_mask)
        vertex_mask = (sample_map(flow_mask, mask_voxel, mask_origin, mesh.vertices) >= 0.5) * 1.0
    log.info(
        "3DFlex: %d canonical pseudo-atoms (%.3g Å grid), mesh of %d vertices and %d "
        "elements (%.3g Å)",
        len(points),
        settings.point_spacing,
        mesh.n_vertices,
        mesh.n_elements,
        settings.mesh_spacing,
    )
    if settings.init_latents:
        source = Path(settings.init_latents)
        source = source / "latents.npz" if source.is_dir() else source
        latents = load_arrays(source, {"latents": ("particles", None)}, what="a run's latents.npz")[
            "latents"
        ]
        if latents.shape[1] < latent_dim:
            raise InputError(
                f"{source}: {latents.shape[1]} latent dimensions, expected at least {latent_dim}"
            )
        # standardised (zero mean, unit sd per axis) to sit under the unit Gaussian prior,
        # whatever the other method's units (e.g. normal-mode amplitudes in Å)
        latents = latents[:, :latent_dim].astype(np.float64)
        latents = (latents - latents.mean(0)) / np.maximum(latents.std(0), 1e-12)
        with atomic_path(run_dir / INITIAL_LATENTS_FILE) as tmp, open(tmp, "wb") as handle:
            np.save(handle, latents.astype(np.float32))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            vertices=mesh.vertices,
            elements=mesh.elements,
            weights=mesh.weights,
            vertex_mask=vertex_mask,
            points=points,
            amplitudes=amplitudes,
            density=density.astype(np.float32),
            density_voxel=np.float64(voxel),
            density_origin=origin,
        )


def read_prepared(run_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of ``run_dir/flex.npz``."""
    return load_arrays(
        Path(run_dir) / FLEX_FILE,
        {
            "vertices": ("vertices", 3),
            "elements": ("elements", 4),
            "weights": ("elements",),
            "vertex_mask": ("vertices",),
            "points": ("points", 3),
            "amplitudes": ("points",),
            "density": (None, None, None),
            "density_voxel": (),
            "density_origin": (3,),
        },
        what="3DFlex's prepared state (written by 'cryomotion train flex')",
    )


def density_grid(run_dir: Path) -> tuple[int, float, np.ndarray]:
    """(cubic box, voxel Å, origin Å) of the run's consensus density grid (for maps)."""
    data = read_prepared(run_dir)
    return int(max(data["density"].shape)), float(data["density_voxel"]), data["density_origin"]


def build_deformation(
    reference: AtomicModel, latent_dim: int, settings: FlexSettings, run_dir: Path
) -> FlowFieldDeformation:
    """The flow-field deformation from ``run_dir/flex.npz`` (learned values come from the
    checkpoint)."""
    data = read_prepared(run_dir)
    mesh = TetMesh(data["vertices"], data["elements"].astype(np.int64), data["weights"])
    return FlowFieldDeformation(
        mesh,
        data["points"],
        data["amplitudes"],
        point_sigma(settings),
        reference.coords,
        latent_dim,
        hidden=tuple(settings.hidden),
        flow_scale=settings.flow_scale,
        rigidity_weight=settings.rigidity_weight,
        vertex_mask=data["vertex_mask"],
        canonical_lr_scale=settings.canonical_lr_scale,
    )


def build_inference(inputs: InferenceInputs) -> LatentTable:
    """The latent table of every particle, from ``initial_latents.npy`` when prepared."""
    settings: FlexSettings = inputs.config.deformation
    path = Path(inputs.run_dir) / INITIAL_LATENTS_FILE
    init = None
    if path.is_file():
        init = np.load(path, allow_pickle=False)
        if len(init) != inputs.n_particles:
            raise InputError(
                f"--init-latents {settings.init_latents}: {len(init)} particles, these "
                f"particles are {inputs.n_particles} (expected a run on the same particles)"
            )
    return LatentTable(
        inputs.n_particles,
        inputs.deformation.latent_dim,
        inner_steps=settings.inner_steps,
        inner_lr=settings.inner_lr,
        predict_steps=settings.predict_steps,
        noise_std=settings.noise_std,
        prior_weight=settings.prior_weight,
        init=init,
    )


def objective(settings: FlexSettings) -> ReconstructionObjective:
    """Seed eq. 6: the L2 data term (+ the deformation's rigidity term, + the prior)."""
    return ReconstructionObjective("l2", prior_weights={"latent_prior": settings.prior_weight})


def schedule(
    settings: FlexSettings, epochs: int, objective: ReconstructionObjective
) -> list[Phase]:
    """Latents fixed for ``fixed_latent_epochs``, then blocks of ``block_epochs``
    alternating "flow" and "canonical", the band limit rising by ``frequency_growth`` per
    phase from 1/``start_resolution``; ``epochs`` in all."""
    phases: list[Phase] = []
    remaining = epochs
    frequency = 1.0 / settings.start_resolution
    first = min(settings.fixed_latent_epochs, remaining)
    if first > 0:
        train = ("flow", "canonical", "intensity")
        phases.append(Phase("fixed_latents", first, objective, train, max_frequency=frequency))
        remaining -= first
    blocks = (("flow", ("flow", "latents")), ("canonical", ("canonical", "intensity", "latents")))
    block = 0
    while remaining > 0:
        frequency *= settings.frequency_growth
        name, train = blocks[block % 2]
        length = min(max(settings.block_epochs, 1), remaining)
        phases.append(Phase(name, length, objective, train, max_frequency=frequency))
        remaining -= length
        block += 1
    return phases or [Phase("flow", 0, objective, ("flow", "latents"))]


SYSTEM = System(
    name="flex",
    summary="3DFlex (seed 003): canonical density convected by a mesh flow, auto-decoder",
    settings_class=FlexSettings,
    prepare=prepare,
    build_deformation=build_deformation,
    default_latent_dim=lambda settings: DEFAULT_LATENT_DIM,
    objective=objective,
    schedule=schedule,
    build_inference=build_inference,
    pose_modes=("given",),
    flags=(
        SystemFlag("--mesh-spacing", "deformation.mesh_spacing", "mesh lattice (Å, default 8)",
                   minimum=0.0, value_type=float),
        SystemFlag("--consensus-map", "deformation.consensus_map",
                   "consensus map (.mrc, model frame); default: the model's potential",
                   value_type=str),
        SystemFlag("--init-latents", "deformation.init_latents",
                   "start the latents from another run (RUN or its latents.npz), standardised",
                   value_type=str),
        SystemFlag("--flow-mask", "deformation.flow_mask",
                   "mask (.mrc): the flow is zero where it is < 0.5", value_type=str),
    ),
)  # fmt: skip

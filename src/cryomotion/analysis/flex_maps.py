"""3DFlex's products: the canonical map, convected maps along each latent axis, the mesh.

Written into a run folder (``flex/``) by ``cryomotion train flex``, from the run alone:

- ``canonical.mrc``: the canonical density (the pseudo-atoms with their learned amplitudes);
- ``convected_z{k}_{i}.mrc``: the density convected by the flow at latents moving along
  axis k from −1 to +1 standard deviation of the particles' latents (the others at their
  mean), ``STEPS`` maps per axis: ChimeraX plays them as a volume series
  (``open flex/convected_z1_*.mrc vseries true``, then ``vseries play #1``);
- ``mesh.cmm``: the tetrahedral mesh as a marker file (a marker per vertex, coloured by
  nothing, a link per element edge), which ChimeraX opens over the maps.

All maps share the consensus density's grid (voxel size and origin in the model's frame),
so they overlay the reference model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cryomotion.analysis.maps import write_map
from cryomotion.atomic_write import atomic_path
from cryomotion.imaging.density import scatterer_map

STEPS = 5  # maps per latent axis, −1 sd … +1 sd
FLEX_FOLDER = "flex"


def pseudo_atom_map(
    deformation, points: np.ndarray, grid: tuple[int, float, np.ndarray]
) -> np.ndarray:
    """[z, y, x] density of ``deformation``'s pseudo-atoms at ``points`` (P, 3) Å on
    ``grid`` (box, voxel Å, origin Å), with its learned amplitudes."""
    scatterers = deformation.scatterers()
    amplitudes = deformation.amplitudes.detach().cpu().double().numpy()
    box, voxel, origin = grid
    return scatterer_map(
        points,
        scatterers.form_factor_a,
        scatterers.form_factor_b,
        scatterers.type_index,
        box,
        voxel,
        origin,
        weights=amplitudes,
    )


def latent_axis_points(latents: np.ndarray, axis: int, steps: int = STEPS) -> np.ndarray:
    """(steps, K): the mean latent moved along ``axis`` from −1 to +1 standard deviation."""
    mean, std = latents.mean(axis=0), latents.std(axis=0)
    path = np.repeat(mean[None, :], steps, axis=0)
    path[:, axis] += np.linspace(-1.0, 1.0, steps) * std[axis]
    return path


def write_marker_file(path: Path, vertices: np.ndarray, edges: np.ndarray, radius: float) -> Path:
    """A Chimera marker file (.cmm): one marker per vertex (Å), one link per edge."""
    lines = ["<marker_sets>", '<marker_set name="3DFlex mesh">']
    for i, (x, y, z) in enumerate(vertices, start=1):
        lines.append(
            f'<marker id="{i}" x="{x:.3f}" y="{y:.3f}" z="{z:.3f}" r="0.8" g="0.8" b="0.2" '
            f'radius="{radius:.3f}"/>'
        )
    for a, b in edges:
        lines.append(
            f'<link id1="{a + 1}" id2="{b + 1}" r="0.6" g="0.6" b="0.6" radius="{radius / 3:.3f}"/>'
        )
    lines += ["</marker_set>", "</marker_sets>"]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return path


@torch.no_grad()
def write_flex_products(run, output: str | Path, grid: tuple[int, float, np.ndarray]) -> dict:
    """Write the canonical map, the convected series and the mesh of a 3DFlex ``run``
    (``train.results.TrainedRun``) into ``output``; returns {name: path}."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    deformation = run.deformation
    box, voxel, origin = grid
    paths = {}
    canonical = deformation.rest().points.cpu().double().numpy()
    paths["canonical"] = write_map(
        output / "canonical.mrc", pseudo_atom_map(deformation, canonical, grid), voxel, origin
    )
    latents = np.asarray(run.latents, dtype=np.float32)
    for axis in range(latents.shape[1]):
        path = latent_axis_points(latents, axis)
        points = deformation(torch.as_tensor(path, dtype=torch.float32)).points
        for step, moved in enumerate(points.cpu().double().numpy()):
            name = f"convected_z{axis + 1}_{step}"
            paths[name] = write_map(
                output / f"{name}.mrc", pseudo_atom_map(deformation, moved, grid), voxel, origin
            )
    mesh = deformation.mesh
    paths["mesh"] = write_marker_file(output / "mesh.cmm", mesh.vertices, mesh.edges(), 0.6)
    return paths


def write_run_products(run_dir: str | Path) -> dict:
    """The products of the 3DFlex run in ``run_dir``, into ``run_dir/flex``, on the grid
    of the run's consensus density."""
    from cryomotion.systems.flex import density_grid
    from cryomotion.train.results import load_run

    run = load_run(run_dir)
    return write_flex_products(run, Path(run_dir) / FLEX_FOLDER, density_grid(run_dir))

"""The tetrahedral mesh, its FEM interpolation and the rigidity penalty (3DFlex)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryomotion.deform.flow_field import FlowFieldDeformation
from cryomotion.deform.mesh import (
    TetMesh,
    barycentric_weights,
    build_mesh,
    element_affine,
    interpolate,
    rigidity_penalty,
)
from cryomotion.errors import InputError

VOXEL = 2.0


def two_blobs(box: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A [z, y, x] map of two Gaussian blobs (a dumbbell) and the blob centres (2, 3) Å."""
    centres = np.array([[16.0, 24.0, 24.0], [32.0, 24.0, 24.0]])
    k, j, i = np.meshgrid(*(np.arange(box),) * 3, indexing="ij")
    xyz = np.stack([i, j, k], -1) * VOXEL
    density = sum(np.exp(-((xyz - c) ** 2).sum(-1) / (2 * 5.0**2)) for c in centres)
    return density, centres


@pytest.fixture(scope="module")
def mesh() -> TetMesh:
    density, _ = two_blobs()
    return build_mesh(density, VOXEL, (0, 0, 0), threshold=0.3, spacing=6.0)


def test_mesh_covers_the_density_with_weighted_elements(mesh):
    density, centres = two_blobs()
    assert mesh.n_vertices > 20 and mesh.n_elements > 20
    assert 0 <= mesh.weights.min() and mesh.weights.max() == pytest.approx(1.0)
    # vertices lie on the 6 Å lattice
    np.testing.assert_allclose(mesh.vertices / 6.0, np.round(mesh.vertices / 6.0), atol=1e-9)
    # the blob centres fall inside kept elements (barycentric weights all ≥ 0)
    _, weights = barycentric_weights(mesh, centres)
    assert (weights >= -1e-9).all()
    np.testing.assert_allclose(weights.sum(1), 1.0)


def test_build_mesh_refuses_an_empty_mask():
    density, _ = two_blobs()
    with pytest.raises(InputError, match="threshold"):
        build_mesh(density, VOXEL, (0, 0, 0), threshold=10.0, spacing=6.0)


def test_affine_vertex_flow_is_interpolated_exactly(mesh):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(3, 3)) * 0.1
    offset = rng.normal(size=3)
    # points inside the mesh and outside it (the affine extension of the nearest element)
    points = np.concatenate([rng.uniform(10, 38, size=(200, 3)), rng.uniform(-5, 55, (50, 3))])
    index, weights = barycentric_weights(mesh, points)
    vertex_flow = torch.as_tensor(mesh.vertices @ matrix.T + offset)
    flow = interpolate(vertex_flow, torch.as_tensor(index), torch.as_tensor(weights))
    np.testing.assert_allclose(flow.numpy(), points @ matrix.T + offset, atol=1e-9)


def test_rigid_motion_has_zero_penalty_and_a_stretch_the_analytic_one(mesh):
    vertices = torch.as_tensor(mesh.vertices)
    elements = torch.as_tensor(mesh.elements)
    inverse = torch.as_tensor(mesh.rest_edge_inverse())
    weights = torch.as_tensor(mesh.weights)
    rotation = Rotation.from_rotvec([0.3, -0.5, 0.8]).as_matrix()
    rigid = (
        vertices @ torch.as_tensor(rotation).T
        + torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)
        - vertices
    )
    affine = element_affine(vertices, elements, inverse, rigid)
    np.testing.assert_allclose(affine.numpy(), np.broadcast_to(rotation, affine.shape), atol=1e-9)
    assert float(rigidity_penalty(affine, weights)) == pytest.approx(0.0, abs=1e-12)
    # stretch by s along x and compress by c along z: Σ_j w_j ((s − 1)² + (c − 1)²)
    s, c = 1.3, 0.8
    stretch = vertices * torch.tensor([s, 1.0, c], dtype=torch.float64) - vertices
    penalty = rigidity_penalty(element_affine(vertices, elements, inverse, stretch), weights)
    expected = float(weights.sum()) * ((s - 1) ** 2 + (c - 1) ** 2)
    assert float(penalty) == pytest.approx(expected, rel=1e-9)
    # batched flows give one penalty per flow
    both = torch.stack([rigid, stretch])
    batched = rigidity_penalty(element_affine(vertices, elements, inverse, both), weights)
    np.testing.assert_allclose(batched.numpy(), [0.0, expected], atol=1e-9)


def test_zero_flow_is_the_identity(mesh):
    rng = np.random.default_rng(1)
    points = rng.uniform(12, 36, size=(50, 3))
    atoms = rng.uniform(12, 36, size=(30, 3))
    deformation = FlowFieldDeformation(
        mesh, points, np.ones(50), 1.0, atoms, latent_dim=2, rigidity_weight=1.0
    )
    with torch.no_grad():
        deformation.generator.output.weight.zero_()  # the generator's flow is then zero
    z = torch.randn(4, 2)
    out = deformation(z)
    np.testing.assert_allclose(
        out.points.detach().numpy(), np.broadcast_to(points, (4, 50, 3)), atol=1e-5
    )
    np.testing.assert_allclose(
        deformation.atoms(z).detach().numpy(), np.broadcast_to(atoms, (4, 30, 3)), atol=1e-5
    )
    assert float(out.regularization["rigidity"].detach()) == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(out.amplitudes.detach().numpy(), np.ones(50), rtol=1e-6)


def test_vertex_mask_holds_the_flow_at_zero(mesh):
    rng = np.random.default_rng(2)
    atoms = rng.uniform(12, 36, size=(30, 3))
    deformation = FlowFieldDeformation(
        mesh, atoms, np.ones(30), 1.0, atoms, 2, vertex_mask=np.zeros(mesh.n_vertices)
    )
    moved = deformation.atoms(torch.randn(3, 2) * 5)
    np.testing.assert_allclose(
        moved.detach().numpy(), np.broadcast_to(atoms, (3, 30, 3)), atol=1e-5
    )


def test_mesh_round_trips_through_a_file(mesh, tmp_path):
    mesh.save(tmp_path / "mesh.npz")
    loaded = TetMesh.load(tmp_path / "mesh.npz")
    np.testing.assert_array_equal(loaded.elements, mesh.elements)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices)

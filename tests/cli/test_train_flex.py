"""`cryomotion train flex` (3DFlex) end to end on a tiny dataset: the run folder, its maps
and mesh, per-particle atomic models, and latents started from another run."""

import mrcfile
import numpy as np
import pytest
import yaml

from cryomotion.cli.main import main
from cryomotion.structure.io import read_model, read_trajectory

FAST = [
    "--set", "deformation.point_spacing=4", "--set", "deformation.mesh_spacing=10",
    "--set", "deformation.inner_steps=2", "--set", "deformation.predict_steps=3",
    "--set", "deformation.block_epochs=1", "--set", "deformation.hidden=16",
]  # fmt: skip


def train(sim, run, *extra):
    return main([
        "train", "flex", str(sim / "particles.star"), str(sim / "reference.pdb"),
        "-o", str(run), "--batch-size", "8", "--device", "cpu", "--no-progress", *FAST, *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def trained(simulated, tmp_path_factory):
    run = tmp_path_factory.mktemp("train_flex_run") / "run"
    assert train(simulated, run, "--epochs", "2", "--mesh-spacing", "10") == 0
    return run


def test_run_folder_holds_latents_maps_and_mesh(trained):
    config = yaml.safe_load((trained / "config.yaml").read_text())["config"]
    assert config["system"] == "flex" and config["model"]["latent_dim"] == 2
    assert config["deformation"]["mesh_spacing"] == 10.0
    with np.load(trained / "latents.npz") as latents:
        z = latents["latents"]
    assert z.shape == (40, 2) and np.isfinite(z).all() and np.abs(z).max() > 0
    with mrcfile.open(trained / "flex" / "canonical.mrc") as mrc:
        canonical = mrc.data.copy()
    assert canonical.max() > 0
    series = sorted((trained / "flex").glob("convected_z*_*.mrc"))
    assert len(series) == 2 * 5
    with mrcfile.open(series[0]) as first, mrcfile.open(series[4]) as last:
        assert first.data.shape == canonical.shape
        assert not np.array_equal(first.data, last.data)  # the flow moves the density
    cmm = (trained / "flex" / "mesh.cmm").read_text()
    assert cmm.count("<marker ") >= 4 and cmm.count("<link ") >= 6


def test_export_gives_atomic_models_carried_by_the_flow(trained, simulated, tmp_path):
    assert main(["export", str(trained), "-o", str(tmp_path / "m.pdb"), "--indices", "0-2"]) == 0
    models = read_trajectory(tmp_path / "m.pdb")
    reference = read_model(simulated / "reference.pdb")
    assert models.shape == (3, reference.n_atoms, 3)
    moved = np.sqrt(((models - reference.coords) ** 2).sum(-1).mean(-1))
    assert (moved > 0).all() and (moved < 10).all()  # Å RMS: moved, and not torn apart


def test_latents_start_from_another_run(trained, simulated, tmp_path):
    run = tmp_path / "again"
    extra = ["--epochs", "1", "--init-latents", str(trained), "--set",
             "deformation.predict_steps=0"]  # fmt: skip
    assert train(simulated, run, *extra) == 0
    with np.load(trained / "latents.npz") as first, np.load(run / "latents.npz") as second:
        given = first["latents"]
        # a fixed-latent phase and no inference steps: the latents are the ones given,
        # standardised to sit under the unit Gaussian prior
        expected = (given - given.mean(0)) / given.std(0)
        np.testing.assert_allclose(second["latents"], expected, rtol=1e-4, atol=1e-5)


def test_flexible_half_maps_and_their_fsc_beside_the_rigid_one(trained, tmp_path):
    out = tmp_path / "halves"
    args = ["reconstruct", str(trained), "--flexible", "-o", str(out), "--lbfgs-iterations", "3",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    for name in ("flexible_half1", "flexible_half2", "rigid_half1", "rigid_half2", "mask"):
        with mrcfile.open(out / f"{name}.mrc") as mrc:
            assert mrc.data.shape == (32, 32, 32) and np.isfinite(mrc.data).all()
    with (
        mrcfile.open(out / "flexible_half1.mrc") as one,
        mrcfile.open(out / "flexible_half2.mrc") as two,
    ):
        assert np.abs(one.data).max() > 0 and not np.array_equal(one.data, two.data)
    header, *rows = (out / "fsc.tsv").read_text().splitlines()
    assert header.split("\t")[3:] == ["flexible", "flexible_masked", "rigid", "rigid_masked"]
    low = [float(v) for v in rows[1].split("\t")[3:]]
    assert min(low) > 0.5  # the lowest shells agree in every half-map pair

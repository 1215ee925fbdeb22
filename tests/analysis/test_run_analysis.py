"""`cryomotion analyze` on a real (tiny) training run of simulated data."""

import logging
import re
import shutil

import mrcfile
import numpy as np
import pytest
import starfile

from cryomotion.cli.main import main
from cryomotion.data import read_particles


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, adk_open_path, adk_closed_path):
    root = tmp_path_factory.mktemp("analysis")
    sim, run = root / "sim", root / "run"
    assert main([
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "6",
        "--particles", "48", "--box", "32", "--pixel-size", "3.0", "--snr", "1",
        "--seed", "0", "--no-progress", "-o", str(sim),
    ]) == 0  # fmt: skip
    assert main([
        "train", "nma", str(sim / "particles.star"), str(sim / "reference.pdb"), "-o", str(run),
        "--modes", "3", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
        "--workers", "0",
    ]) == 0  # fmt: skip
    return sim, run


@pytest.fixture(scope="module")
def analysis(trained_run):
    _, run = trained_run
    assert main(["analyze", str(run), "--states", "3", "--pcs", "2", "--frames", "4"]) == 0
    return run / "analysis"


def test_states_partition_the_particles_and_keep_the_star_columns(trained_run, analysis):
    sim, _ = trained_run
    original = starfile.read(sim / "particles.star")
    full = read_particles(sim / "particles.star")
    seen = []
    for k in (1, 2, 3):
        indices = np.loadtxt(analysis / f"state_{k}_indices.txt", dtype=int, ndmin=1)
        subset = starfile.read(analysis / f"particles_state_{k}.star")
        assert list(subset["particles"].columns) == list(original["particles"].columns)
        assert subset["optics"].equals(original["optics"])
        assert len(subset["particles"]) == len(indices)
        # image names are relative to the subset's own folder; they name the same images
        read_back = read_particles(analysis / f"particles_state_{k}.star")
        assert np.array_equal(read_back.image_files, full.image_files[indices])
        assert np.array_equal(read_back.image_indices, full.image_indices[indices])
        seen.extend(indices.tolist())
    assert sorted(seen) == list(range(48))


def test_structures_and_maps(analysis):
    from cryomotion.structure.io import read_trajectory

    frames = read_trajectory(analysis / "pc1_trajectory.pdb")
    assert frames.shape[0] == 4
    with mrcfile.open(analysis / "state_1.mrc") as mrc:
        assert mrc.data.shape == (32, 32, 32)
        assert np.isclose(mrc.voxel_size.x, 3.0)
        assert mrc.data.max() > 0
    script = (analysis / "analysis.cxc").read_text()
    assert "open pc1_trajectory.pdb coordsets true" in script


def test_report_embeds_every_image_and_links_existing_files(analysis):
    page = (analysis / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5
    for target in re.findall(r'href="([^"]+)"', page):
        assert (analysis / target).is_file(), target
    assert "Against the ground truth" in page


def test_report_images_load_in_chromium(analysis, chromium_images):
    loaded, total = chromium_images(analysis / "report.html")
    assert total >= 5 and loaded == total


def test_umap_embeds_the_latents_or_names_the_missing_extra(trained_run, tmp_path, capsys):
    _, run = trained_run
    code = main(["analyze", str(run), "-o", str(tmp_path / "u"), "--umap", "--states", "2",
                 "--no-maps"])  # fmt: skip
    try:
        import umap  # noqa: F401
    except ImportError:
        assert code == 2
        assert "umap-learn" in capsys.readouterr().err
        return
    assert code == 0
    assert np.load(tmp_path / "u" / "umap.npy").shape == (48, 2)
    assert (tmp_path / "u" / "latent_umap.png").is_file()


def test_reconstruct_gives_each_state_a_data_map_and_model_vs_data_fsc(trained_run, tmp_path):
    """Issue 13, item 3: --reconstruct reconstructs each state's particles (the table and
    the state's member indices) on its model map's grid; the report shows the curves and
    the 0.5 / 0.143 resolutions."""
    _, run = trained_run
    out = tmp_path / "fsc"
    assert main(["analyze", str(run), "-o", str(out), "--states", "2", "--pcs", "1",
                 "--frames", "2", "--reconstruct"]) == 0  # fmt: skip
    page = (out / "report.html").read_text()
    assert "<h2>Model vs data</h2>" in page
    section = page.split("<h2>Model vs data</h2>")[1].split("<h2>")[0]
    assert "model-vs-data FSC 0.5 (Å)" in section and "half-map FSC 0.143 (Å)" in section
    assert section.count("data:image/png;base64,") == 2
    total = 0
    for k in (1, 2):
        with (
            mrcfile.open(out / f"state_{k}.mrc") as model,
            mrcfile.open(out / f"state_{k}_data.mrc") as data,
        ):
            assert data.data.shape == model.data.shape == (32, 32, 32)
            assert float(data.voxel_size.x) == pytest.approx(float(model.voxel_size.x))
            assert [float(data.header.origin[a]) for a in "xyz"] == pytest.approx(
                [float(model.header.origin[a]) for a in "xyz"]
            )
        rows = (out / f"state_{k}_fsc.tsv").read_text().splitlines()
        assert rows[0].split("\t")[-2:] == ["data vs model", "half maps"]
        assert len(rows) == 1 + 16 + 1
        assert (out / f"state_{k}_fsc.png").stat().st_size > 0
        members = len(np.loadtxt(out / f"state_{k}_indices.txt", ndmin=1))
        total += members
        assert f"<td>{k}</td><td>{members}</td>" in section
        # shell 1 (96 Å): the data map of ~24 particles agrees with the model's map
        assert float(rows[2].split("\t")[3]) > 0.5, rows[2]
    assert total == 48
    for target in re.findall(r'href="([^"]+)"', page):
        assert (out / target).is_file(), target


def test_reconstruct_works_for_particles_from_cryodrgn_pickles(trained_run, tmp_path):
    """The same run with its particles given as a stack + cryoDRGN poses.pkl/ctf.pkl (no
    star file, so no star subsets): the states are still reconstructed and compared."""
    import pickle

    import yaml

    from cryomotion.data.poses import shift_to_cryodrgn_trans

    sim, run = trained_run
    table = read_particles(sim / "particles.star")
    trans = shift_to_cryodrgn_trans(table.shifts, table.box_size, table.pixel_size)
    poses, ctf = tmp_path / "poses.pkl", tmp_path / "ctf.pkl"
    with open(poses, "wb") as handle:
        pickle.dump((table.rotations.astype(np.float32), trans.astype(np.float32)), handle)
    with open(ctf, "wb") as handle:
        pickle.dump(np.column_stack([np.full(len(table), table.box_size), table.pixel_size,
                                     table.ctf[:, :7]]).astype(np.float32), handle)  # fmt: skip
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    data = config["config"]["data"]
    data.update(particles=str(sim / "particles.mrcs"), poses=str(poses), ctf=str(ctf))
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "fsc"
    assert _fast_analyze(copy, out, "--reconstruct") == 0
    assert not list(out.glob("particles_state_*.star"))
    page = (out / "report.html").read_text()
    section = page.split("<h2>Model vs data</h2>")[1].split("<h2>")[0]
    assert section.count("data:image/png;base64,") == 2
    for k in (1, 2):
        assert (out / f"state_{k}_data.mrc").is_file() and (out / f"state_{k}_fsc.tsv").is_file()
        assert not (out / f"state_{k}.mrc").exists()  # --no-maps: the model map stays in memory


def _fast_analyze(run, out, *extra):
    return main(["analyze", str(run), "-o", str(out), "--states", "2", "--pcs", "1",
                 "--frames", "2", "--no-maps", *extra])  # fmt: skip


def test_another_simulators_ground_truth_is_skipped_with_a_warning(trained_run, tmp_path, caplog):
    sim, run = trained_run
    truth = sim / "ground_truth.npz"
    kept = tmp_path / "kept.npz"
    shutil.copy2(truth, kept)
    try:  # the file found beside the particles, written by another simulator
        np.savez(truth, rotations=np.zeros((48, 3, 3)), defocus=np.ones(48))
        with caplog.at_level(logging.WARNING):
            assert _fast_analyze(run, tmp_path / "a") == 0
    finally:
        shutil.copy2(kept, truth)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "ground_truth.npz" in w and "frame_index, frame_position, frame_coords" in w
        and "skipped" in w for w in warnings
    ), warnings  # fmt: skip
    assert "Against the ground truth" not in (tmp_path / "a" / "report.html").read_text()


def test_ground_truth_files_that_do_not_fit_are_input_errors(trained_run, tmp_path):
    from cryomotion.analysis.run_analysis import _read_ground_truth
    from cryomotion.errors import InputError
    from cryomotion.train.results import load_run

    sim, run_dir = trained_run
    run = load_run(run_dir)
    with np.load(sim / "ground_truth.npz") as data:
        good = dict(data)
    truth = _read_ground_truth(run, sim / "ground_truth.npz", explicit=False)
    assert truth.models.shape == (48, run.reference.n_atoms, 3)
    cases = [
        ({"frame_index": good["frame_index"].astype(object)}, "'frame_index' holds Python objects"),
        ({"frame_coords": good["frame_coords"][:, :5]}, "frames hold 5 atoms"),
        ({"frame_index": good["frame_index"][:10]}, "'frame_position' has 48 particles"),
        ({"frame_index": good["frame_index"] + 100}, "frame_index outside"),
        ({"frame_position": np.full(48, "x")}, "'frame_position' holds <U1"),
    ]
    for change, message in cases:
        path = tmp_path / "truth.npz"
        np.savez(path, **{**good, **change})
        with pytest.raises(InputError, match=message):
            _read_ground_truth(run, path, explicit=False)
    np.savez(path, rotations=np.zeros(3))  # another simulator's, asked for by name
    with pytest.raises(InputError, match="no arrays frame_index, frame_position, frame_coords"):
        _read_ground_truth(run, path, explicit=True)
    assert _read_ground_truth(run, path, explicit=False) is None


def test_object_arrays_in_membership_are_input_errors(trained_run, tmp_path):
    from cryomotion.analysis.run_analysis import _segmentation_section
    from cryomotion.errors import InputError
    from cryomotion.train.results import load_run

    _, run_dir = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("analysis"))
    run = load_run(copy)
    np.savez(copy / "membership.npz", membership=np.ones((3, 2), dtype=object))
    with pytest.raises(InputError, match=r"membership\.npz: array 'membership' holds Python obj"):
        _segmentation_section(run, tmp_path)
    np.savez(copy / "membership.npz", membership=np.ones((3, 2)))
    with pytest.raises(InputError, match="membership holds 3 residues"):
        _segmentation_section(run, tmp_path)

"""The conventions proven end to end: simulate -> write star -> read -> re-render -> identical."""

import mrcfile
import numpy as np
import pytest

from cryomotion.cli.main import main
from cryomotion.data.readers import read_particles
from cryomotion.structure.io import read_model


@pytest.fixture(scope="module")
def clean_dataset(tmp_path_factory, adk_open_path, adk_closed_path):
    out = tmp_path_factory.mktemp("sim")
    code = main(
        [
            "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path),
            "--frames", "5", "--particles", "60", "--box", "64", "--pixel-size", "1.6",
            "--snr", "inf", "--astigmatism", "800", "--shift-std", "4", "--seed", "3",
            "--no-progress", "-o", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return out


def _correlation(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_star_file_reproduces_the_simulation_parameters(clean_dataset):
    truth = np.load(clean_dataset / "ground_truth.npz")
    table = read_particles(clean_dataset / "particles.star")
    np.testing.assert_allclose(table.rotations, truth["rotations"], atol=1e-5)
    np.testing.assert_allclose(table.shifts, truth["shifts"], atol=1e-4)
    np.testing.assert_allclose(table.ctf, truth["ctf"], atol=1e-2)


def test_project_reproduces_simulated_particles(clean_dataset, tmp_path):
    truth = np.load(clean_dataset / "ground_truth.npz")
    reference_frame = np.nonzero(truth["frame_index"] == 0)[0]
    assert len(reference_frame) >= 3
    indices = tmp_path / "indices.txt"
    indices.write_text("\n".join(map(str, reference_frame)))
    output = tmp_path / "projections.mrcs"
    code = main(
        [
            "project", str(clean_dataset / "reference.pdb"), str(clean_dataset / "particles.star"),
            "-o", str(output), "--indices", str(indices), "--device", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    particles = mrcfile.read(clean_dataset / "particles.mrcs")[reference_frame]
    projections = mrcfile.read(output)
    for particle, projection in zip(particles, projections):
        assert _correlation(particle, projection) > 0.999
    with mrcfile.open(output) as mrc:
        assert np.isclose(mrc.voxel_size.x, 1.6)


def test_reference_is_written_in_the_box_frame(clean_dataset):
    reference = read_model(clean_dataset / "reference.pdb")
    truth = np.load(clean_dataset / "ground_truth.npz")
    np.testing.assert_allclose(reference.coords.mean(0), [32 * 1.6] * 3, atol=1e-2)
    np.testing.assert_allclose(truth["frame_coords"][0], reference.coords, atol=1e-3)


def test_seeded_simulation_is_deterministic(
    clean_dataset, tmp_path, adk_open_path, adk_closed_path
):
    args = [
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "5",
        "--particles", "60", "--box", "64", "--pixel-size", "1.6", "--snr", "inf",
        "--astigmatism", "800", "--shift-std", "4", "--seed", "3", "--no-progress",
        "-o", str(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0
    np.testing.assert_array_equal(
        mrcfile.read(tmp_path / "particles.mrcs"), mrcfile.read(clean_dataset / "particles.mrcs")
    )


def test_noise_level_matches_the_requested_snr(tmp_path, adk_open_path, adk_closed_path):
    common = [
        "simulate", "--endpoints", str(adk_open_path), str(adk_closed_path), "--frames", "3",
        "--particles", "40", "--box", "48", "--pixel-size", "2.0", "--seed", "1", "--no-progress",
    ]  # fmt: skip
    assert main([*common, "--snr", "inf", "-o", str(tmp_path / "clean")]) == 0
    assert main([*common, "--snr", "-10dB", "-o", str(tmp_path / "noisy")]) == 0
    clean = mrcfile.read(tmp_path / "clean" / "particles.mrcs").astype(np.float64)
    noisy = mrcfile.read(tmp_path / "noisy" / "particles.mrcs").astype(np.float64)
    snr = clean.reshape(40, -1).var(axis=1).mean() / (noisy - clean).var()
    assert abs(snr - 0.1) < 0.01

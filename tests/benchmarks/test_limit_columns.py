"""The limit column written into docs tables (benchmarks/limit_columns.py)."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cryomotion.structure.io import read_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import dataset_limit  # noqa: E402
import limit_columns  # noqa: E402

LIMITS = {
    -10.0: {"median_limit": 0.004, "median_posterior_width": 0.04},
    -20.0: {"median_limit": 0.18, "median_posterior_width": 0.47},
}
RIGIDS = {-10.0: 4.836, -20.0: 4.836}
TABLE = """Text before.

| SNR (dB) | system | RMSD | rigid |
|---:|---|---:|---:|
| -10 | nma | 2.16 | 4.84 |
| -20 | nma | 3.68 | 4.84 |
| -30 | nma | 4.84 | 4.84 |

Text after."""


def section(after="rigid", rigid="rigid"):
    return limit_columns.Section("s", {}, limit_columns.snr_key, after, rigid)


def test_column_after_the_rigid_baseline_with_the_width():
    text, messages = limit_columns.annotate(TABLE, section(), LIMITS, RIGIDS)
    lines = text.split("\n")
    assert lines[2] == "| SNR (dB) | system | RMSD | rigid | limit (width) |"
    assert lines[3] == "|---:|---|---:|---:|---:|"
    assert lines[4] == "| -10 | nma | 2.16 | 4.84 | 0.00 (0.04) |"
    assert lines[5] == "| -20 | nma | 3.68 | 4.84 | 0.18 (0.47) |"
    assert lines[6] == "| -30 | nma | 4.84 | 4.84 | – |"  # no limit for that dataset
    assert limit_columns.NOTE in text and text.endswith("Text after.")
    assert messages == []


def test_rerun_replaces_the_column_rather_than_adding_one():
    once, _ = limit_columns.annotate(TABLE, section(), LIMITS, RIGIDS)
    changed = {**LIMITS, -20.0: {"median_limit": 0.25, "median_posterior_width": 0.5}}
    twice, _ = limit_columns.annotate(once, section(), changed, RIGIDS)
    assert twice.count("limit (width)") == once.count("limit (width)")
    assert "| -20 | nma | 3.68 | 4.84 | 0.25 (0.50) |" in twice
    assert twice.count(limit_columns.NOTE) == 1


def test_data_whose_rigid_baseline_differs_get_no_limit():
    text, messages = limit_columns.annotate(TABLE, section(), LIMITS, {**RIGIDS, -20.0: 3.5})
    assert "| -20 | nma | 3.68 | 4.84 | – |" in text
    assert len(messages) == 1 and "differs" in messages[0]


def test_two_column_table_gets_a_row_after_the_rigid_reference():
    table = "| per-particle RMSD | Å |\n|---|---:|\n| model | 1.54 |\n| rigid reference | 4.92 |"
    sec = limit_columns.Section("s", {}, lambda cells: 0, "rigid reference", "rigid reference")
    limits = {0: {"median_limit": 0.0, "median_posterior_width": 0.0}}
    text, messages = limit_columns.annotate(table, sec, limits, {0: 4.921})
    rows = text.split("\n")
    assert rows[4] == f"| {limit_columns.ROW} | 0.00 (0.00) |"
    again, _ = limit_columns.annotate(text, sec, limits, {0: 4.921})
    assert again.count(limit_columns.ROW) == 1 and messages == []


def test_normal_mode_and_segments_rows_get_their_ceiling_after_the_limit():
    table = (
        "| SNR (dB) | system | RMSD | rigid |\n|---:|---|---:|---:|\n"
        "| -10 | NMA d = 16 | 2.16 | 4.84 |\n| -10 | segments N = 6 | 1.35 | 4.84 |\n"
        "| -10 | segments N = 12 | 1.02 | 4.84 |\n| -10 | NMA d = 16 (stopped) | 183.09 | 4.84 |"
    )
    sec = limit_columns.Section(
        "s",
        {},
        limit_columns.snr_key,
        "rigid",
        "rigid",
        limit_columns.nma_modes,
        limit_columns.segment_count,
    )
    ceilings = {(-10.0, "nma", 16): 1.104, (-10.0, "segments", 6): 0.614}
    text, _ = limit_columns.annotate(table, sec, LIMITS, RIGIDS, ceilings)
    lines = text.split("\n")
    assert lines[0] == "| SNR (dB) | system | RMSD | rigid | limit (width) | ceiling |"
    assert lines[2] == "| -10 | NMA d = 16 | 2.16 | 4.84 | 0.00 (0.04) | 1.10 |"
    assert lines[3] == "| -10 | segments N = 6 | 1.35 | 4.84 | 0.00 (0.04) | 0.61 |"
    assert lines[4] == "| -10 | segments N = 12 | 1.02 | 4.84 | 0.00 (0.04) | – |"  # not computed
    assert lines[5] == "| -10 | NMA d = 16 (stopped) | 183.09 | 4.84 | 0.00 (0.04) | – |"
    assert limit_columns.CEILING_NOTE in text
    again, _ = limit_columns.annotate(text, sec, LIMITS, RIGIDS, ceilings)
    assert again == text  # a rerun changes nothing


def test_a_segments_only_table_gets_a_ceiling_column_and_the_new_note_replaces_the_old():
    old_note = limit_columns.NOTE + " *ceiling*: the median Cα-RMSD of the true frames projected."
    table = (
        "| SNR (dB) | variant | RMSD (Å) | limit (width) | r |\n|---:|---|---:|---:|---:|\n"
        "| -10 | β 0 | 1.55 | 0.00 (0.04) | 0.76 |\n| -20 | β 0 | 3.62 | 0.18 (0.47) | 0.28 |"
        "\n\n" + old_note + "\n\nText after."
    )
    sec = limit_columns.Section(
        "s", {}, limit_columns.snr_key, "RMSD (Å)", None, segments=lambda cells: 6
    )
    ceilings = {(-10.0, "segments", 6): 0.614, (-20.0, "segments", 6): 0.7}
    text, messages = limit_columns.annotate(table, sec, LIMITS, RIGIDS, ceilings)
    lines = text.split("\n")
    assert lines[0] == "| SNR (dB) | variant | RMSD (Å) | limit (width) | ceiling | r |"
    assert lines[2] == "| -10 | β 0 | 1.55 | 0.00 (0.04) | 0.61 | 0.76 |"
    assert lines[3] == "| -20 | β 0 | 3.62 | 0.18 (0.47) | 0.70 | 0.28 |"
    assert old_note not in text and text.count(limit_columns.NOTE) == 1
    assert limit_columns.CEILING_NOTE in text and text.endswith("\n\nText after.")
    assert messages == []
    again, _ = limit_columns.annotate(text, sec, LIMITS, RIGIDS, ceilings)
    assert again == text


def test_segment_count_reads_the_rows_system():
    assert limit_columns.segment_count(["-10", "segments N = 6", "1.35"]) == 6
    assert limit_columns.segment_count(["-10", "NMA d = 16", "1.35"]) is None
    assert limit_columns.segment_count(["-10", "segments N = 6 (stopped)"]) is None


def test_segments_ceiling_of_a_dataset_whose_frames_move_three_blocks_rigidly(
    tmp_path, adk_open_path
):
    reference = read_model(adk_open_path)
    shutil.copy(adk_open_path, tmp_path / "reference.pdb")
    residue = reference.residue_index
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        coords = reference.coords.copy()
        for first, last in ((0, 70), (70, 150), (150, reference.n_residues)):
            block = (residue >= first) & (residue < last)
            rotation = Rotation.from_rotvec(rng.normal(size=3) * 0.2).as_matrix()
            coords[block] = coords[block] @ rotation.T + rng.normal(size=3)
        frames.append(coords)
    np.savez(tmp_path / "ground_truth.npz", frame_coords=np.array(frames),
             frame_index=np.array([0, 0, 1, 2, 2, 2]))  # fmt: skip
    assert limit_columns.contiguous_segments_ceiling(tmp_path, 3) < 1e-6
    one = limit_columns.contiguous_segments_ceiling(tmp_path, 1)
    assert one == pytest.approx(dataset_limit.rigid_baseline(tmp_path), rel=1e-9) and one > 0.5

"""The limit column written into docs tables (benchmarks/limit_columns.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
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


def test_normal_mode_rows_get_their_ceiling_after_the_limit():
    table = (
        "| SNR (dB) | system | RMSD | rigid |\n|---:|---|---:|---:|\n"
        "| -10 | NMA d = 16 | 2.16 | 4.84 |\n| -10 | segments N = 6 | 1.35 | 4.84 |"
    )
    sec = limit_columns.Section(
        "s", {}, limit_columns.snr_key, "rigid", "rigid", limit_columns.nma_modes
    )
    ceilings = {(-10.0, 16): 1.104}
    text, _ = limit_columns.annotate(table, sec, LIMITS, RIGIDS, ceilings)
    lines = text.split("\n")
    assert lines[0] == "| SNR (dB) | system | RMSD | rigid | limit (width) | ceiling |"
    assert lines[2] == "| -10 | NMA d = 16 | 2.16 | 4.84 | 0.00 (0.04) | 1.10 |"
    assert lines[3] == "| -10 | segments N = 6 | 1.35 | 4.84 | 0.00 (0.04) | – |"
    assert limit_columns.CEILING_NOTE in text
    again, _ = limit_columns.annotate(text, sec, LIMITS, RIGIDS, ceilings)
    assert again == text  # a rerun changes nothing

"""``metrics.csv``: one row per epoch, rewritten atomically after each epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cryomotion.atomic_write import atomic_path

COLUMNS = (
    "epoch",
    "train_loss",
    "test_loss",
    "particles_per_s",
    "epoch_seconds",
    "elapsed_seconds",
    "outside_box",  # fraction of test particles whose models left the box (train.sanity)
    "intensity_gain",  # mean fitted gain, normalised data units per renderer unit
)


class MetricsLog:
    """The rows of ``metrics.csv`` (epochs counted from 1)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def load(self, up_to_epoch: int) -> None:
        """Keep the rows of a previous run up to ``up_to_epoch`` (a resumed run's checkpoint)."""
        self.rows = []
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if int(row["epoch"]) <= up_to_epoch:
                        self.rows.append({k: float(v) for k, v in row.items() if v != ""})

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in self.rows:
            writer.writerow(
                {k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items() if k in COLUMNS}
            )
        with atomic_path(self.path) as tmp:
            tmp.write_text(buffer.getvalue())

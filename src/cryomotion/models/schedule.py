"""Training phases: a system's schedule is a list of phases, each training some named
parameter groups against one objective for some epochs.

The trainer builds a fresh optimizer at the start of each phase over the groups the phase
trains (the others are frozen), and its checkpoints record the phase, so a resumed run
continues mid-phase exactly. Epochs are counted over the whole schedule.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Phase:
    """One phase of a schedule.

    name : how logs and configs name it.
    epochs : its length in epochs.
    objective : what it minimises (``models.objectives``).
    train : patterns (fnmatch) of the parameter groups it steps; others are frozen.
    use_conformation : False renders the undeformed points (a pose-only phase).
    max_frequency : 1/Å; the band limit of its rendered images (None: Nyquist).

    Every phase trains on the run's training particles (a phase on a subset, for
    DeepHEMNMA's alignment, is still to come).
    """

    name: str
    epochs: int
    objective: Any = None
    train: tuple[str, ...] = ("*",)
    use_conformation: bool = True
    max_frequency: float | None = None

    def trains(self, group: str) -> bool:
        return any(fnmatch.fnmatchcase(group, pattern) for pattern in self.train)


def total_epochs(phases: list[Phase]) -> int:
    return sum(phase.epochs for phase in phases)


def phase_at(phases: list[Phase], epoch: int) -> tuple[int, int]:
    """(index of the phase that epoch ``epoch`` (from 0) belongs to, its first epoch);
    past the end: the last phase."""
    start = 0
    for index, phase in enumerate(phases):
        if epoch < start + phase.epochs:
            return index, start
        start += phase.epochs
    last = len(phases) - 1
    return last, start - phases[last].epochs

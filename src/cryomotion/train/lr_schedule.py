"""The learning rate along a training phase.

With a constant rate the last steps of training move the model as far as the first ones,
so the model a run ends with carries the noise of its last few batches: at low SNR the
gradient of one batch is mostly noise. A cosine schedule (Loshchilov & Hutter 2017,
without restarts) lets the rate fall smoothly to a small fraction of itself by the end of
each phase, so the final steps average over many batches instead.
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def learning_rate_factor(schedule: str, progress: float, final: float = 0.1) -> float:
    """The rate as a fraction of its start at ``progress`` ∈ [0, 1] through a phase:
    "constant" 1; "cosine" final + (1 − final)(1 + cos πp)/2, from 1 down to ``final``."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        progress = min(max(progress, 0.0), 1.0)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"learning-rate schedule {schedule!r}: expected one of {LR_SCHEDULES}")

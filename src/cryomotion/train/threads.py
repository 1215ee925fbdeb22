"""CPU threads of a cryomotion process, chosen when it starts.

PyTorch runs one intra-op thread per core. On a machine where another process keeps a
core busy, every parallel region then waits for the thread that shares a core with that
process, and training slowed several-fold (issue 16: up to ~20× on a 2-core machine).
So the ``cryomotion`` command starts with as many threads as there are cores not already
busy, at least one, unless ``CRYOMOTION_THREADS`` says how many. Busy cores are measured
over a quarter of a second from ``/proc/stat`` (the load average lags by a minute, so it
would still count the cryomotion process that just finished), else taken from the load
average.

OpenMP's wait policy is left as it is: a passive policy (waiting threads sleep) was
measured to cost a third of the speed of a run alone on 2 cores (docs/performance.md,
"shared_machine"), and with the threads matched to the free cores no thread waits on a
busy core.

The thread count must be set before PyTorch starts its thread pool, i.e. before the first
parallel operation; ``configure_threads`` is called by the ``cryomotion`` command before a
verb runs (not by ``cli.main.main`` called from Python, whose caller owns its threads).
Results differ across thread counts by float rounding (docs/conventions.md,
"Reproducibility"): set ``CRYOMOTION_THREADS`` for bit-identical reruns on a shared machine.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

THREADS_VARIABLE = "CRYOMOTION_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from /proc/stat, or None where unreadable."""
    try:
        with open("/proc/stat") as handle:
            fields = [float(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def busy_cores(window: float = 0.25) -> float:
    """Cores kept busy by other processes now: measured over ``window`` seconds while this
    one sleeps, else the 1-minute load average (0 where neither is known)."""
    before = _cpu_times()
    if before is not None:
        time.sleep(window)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            fraction = (after[0] - before[0]) / (after[1] - before[1])
            return fraction * (os.cpu_count() or 1)
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def choose_threads(cores: int, busy: float, requested: str | None = None) -> int:
    """Threads for ``cores`` usable cores of which ``busy`` are taken; ``requested`` (the
    ``CRYOMOTION_THREADS`` text) wins when it is a positive integer."""
    if requested:
        try:
            value = int(requested)
        except ValueError:
            value = 0
        if value >= 1:
            return value
        log.warning("%s=%r: expected a positive integer; choosing", THREADS_VARIABLE, requested)
    return max(1, min(cores, cores - round(busy)))


def configure_threads() -> int:
    """Set PyTorch's thread count for this process to the free cores; returns it."""
    import torch  # noqa: PLC0415 - slow to import; the command imports it here first

    cores, busy = usable_cores(), busy_cores()
    threads = choose_threads(cores, busy, os.environ.get(THREADS_VARIABLE))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if threads < cores:
        log.info(
            "%.1f of %d cores busy: %d CPU thread(s) (set %s to choose)",
            busy, cores, threads, THREADS_VARIABLE,
        )  # fmt: skip
    return threads

"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and an interrupted write leaves the previous
file (if any) intact. The temporary file is ``.{name}.XXXXXXXX{suffix}`` in the target's
folder; one left behind by a killed process is removed when the same target is next
written (a target has one writer at a time). The finished file gets the mode an ordinary
``open`` would give it, ``0o666 & ~umask``, not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

# what tempfile.mkstemp puts between prefix and suffix: 8 of these characters
_RANDOM_PART = r"[a-z0-9_]{8}"


def file_mode() -> int:
    """The mode a newly created file gets under the current umask: ``0o666 & ~umask``."""
    try:  # Linux: read it without changing it (os.umask sets it, racing other threads)
        with open("/proc/self/status") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def temporary_name_pattern(path: str | os.PathLike, suffix: str | None = None) -> re.Pattern:
    """The names ``atomic_path`` gives its temporary files for the target ``path``."""
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    return re.compile(rf"\.{re.escape(path.name)}\.{_RANDOM_PART}{re.escape(suffix)}")


def remove_stale_temporaries(path: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """Delete the temporary files that interrupted writes of ``path`` left; return them."""
    path = Path(path)
    pattern = temporary_name_pattern(path, suffix)
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` defaults to the target's own (some writers choose the format from it).
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()

"""Training checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python values (numbers, strings, lists, dicts),
so loading never runs code from the file:

    format, version, epoch (completed epochs), batch (batches done in the current epoch),
    model (state dict), optimizer (state dict), rng (torch CPU generator state),
    rng_cuda (list of CUDA generator states), progress (running loss sums of the epoch,
    elapsed seconds)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from cryomotion import __version__
from cryomotion.atomic_write import atomic_path
from cryomotion.errors import InputError

FORMAT = "cryomotion-checkpoint-1"


def rng_state() -> dict[str, Any]:
    """The torch random generator states (CPU and every CUDA device)."""
    state = {"rng": torch.get_rng_state()}
    state["rng_cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the generators back to a state from ``rng_state``."""
    torch.set_rng_state(state["rng"])
    if torch.cuda.is_available() and state.get("rng_cuda"):
        torch.cuda.set_rng_state_all(state["rng_cuda"])


def save_checkpoint(path: str | Path, **payload: Any) -> Path:
    """Write ``payload`` (tensors and plain values) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": __version__, **payload}, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``.

    Raises ``InputError`` for a missing or unreadable file, and for one holding anything
    other than tensors and plain values (``weights_only`` loading refuses pickled objects).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(
            f"{path}: refused, the checkpoint holds more than tensors and plain values "
            f"({first_line})"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise InputError(f"{path}: not a readable checkpoint ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a cryomotion checkpoint (expected format {FORMAT})")
    return payload

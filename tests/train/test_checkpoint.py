"""Checkpoints: atomic round trip; only tensors and plain values are ever loaded."""

import pytest
import torch

from cryomotion.errors import InputError
from cryomotion.train.checkpoint import (
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)


def test_round_trip_and_rng(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.manual_seed(5)
    state = rng_state()
    expected = torch.rand(3)
    path = save_checkpoint(tmp_path / "c.pt", epoch=2, batch=0, model=model.state_dict(), **state)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    payload = load_checkpoint(path)
    assert payload["epoch"] == 2
    torch.testing.assert_close(payload["model"]["weight"], model.weight.detach())
    restore_rng_state(payload)
    torch.testing.assert_close(torch.rand(3), expected)


class Payload:
    """Any class: unpickling it would run its module's code."""


def test_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cryomotion-checkpoint-1", "thing": Payload()}, path)
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(path)


def test_refuses_other_files(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not a cryomotion checkpoint"):
        load_checkpoint(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_checkpoint(garbage)

"""Fixtures of the dynamics tests: AdK open/closed, gramicidin and ElNemo's mode 7."""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cryomotion.structure.io import read_model, read_trajectory
from cryomotion.structure.model import AtomicModel

ELNEMO_MODE7 = Path(__file__).parent.parent / "data" / "1grm_elNemo_mode7.pdb.bz2"


@pytest.fixture(scope="session", autouse=True)
def single_threaded_blas():
    """One BLAS thread: the matrices here are small, and on a busy machine spinning BLAS
    threads slow the dense eigensolvers (ours and ProDy's) down tenfold."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def adk_open(adk_open_path) -> AtomicModel:
    return read_model(adk_open_path)


@pytest.fixture(scope="session")
def adk_closed(adk_closed_path) -> AtomicModel:
    return read_model(adk_closed_path)


@pytest.fixture(scope="session")
def gramicidin(gramicidin_path) -> AtomicModel:
    return read_model(gramicidin_path)


@pytest.fixture(scope="session")
def elnemo_mode7(tmp_path_factory) -> tuple[AtomicModel, np.ndarray]:
    """ElNemo's gramicidin (264 heavy atoms) and its trajectory (11, 264, 3) along mode 7,
    amplitudes -100 to +100 in steps of 20."""
    path = tmp_path_factory.mktemp("elnemo") / "1grm_elNemo_mode7.pdb"
    path.write_bytes(bz2.decompress(ELNEMO_MODE7.read_bytes()))
    return read_model(path), read_trajectory(path)


def _tiled(model: AtomicModel, copies: int, gap: float) -> AtomicModel:
    """``copies`` of a model side by side along x, ``gap`` Å between their bounding boxes,
    as chains A, B, ..."""
    extent = np.ptp(model.coords[:, 0]) + gap
    parts = []
    for index in range(copies):
        coords = model.coords + np.array([index * extent, 0.0, 0.0])
        parts.append((coords, np.full(model.n_atoms, chr(ord("A") + index))))
    return AtomicModel(
        coords=np.concatenate([c for c, _ in parts]),
        elements=np.tile(model.elements, copies),
        atom_names=np.tile(model.atom_names, copies),
        residue_names=np.tile(model.residue_names, copies),
        residue_numbers=np.tile(model.residue_numbers, copies),
        insertion_codes=np.tile(model.insertion_codes, copies),
        chain_ids=np.concatenate([chains for _, chains in parts]),
        b_factors=np.tile(model.b_factors, copies),
        occupancies=np.tile(model.occupancies, copies),
        is_hetero=np.tile(model.is_hetero, copies),
    )


@pytest.fixture(scope="session")
def tiled():
    """Function (model, copies, gap Å) -> the copies side by side along x as chains A, B, ..."""
    return _tiled

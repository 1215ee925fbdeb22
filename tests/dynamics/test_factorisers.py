"""SuperLU and CHOLMOD (optional, from cvxopt) factors of the shifted Hessian agree; the
automatic choice falls back to SuperLU without cvxopt and says so."""

import builtins
import logging

import numpy as np
import pytest

from cryomotion.dynamics import eigensolver
from cryomotion.dynamics.eigensolver import nontrivial_modes
from cryomotion.dynamics.elastic_network import anm_hessian
from cryomotion.dynamics.nodes import select_nodes
from cryomotion.errors import InputError


@pytest.fixture(scope="module")
def block_network(adk_open):
    """Hessian of 8 copies of AdK Cα stacked in a 2×2×2 block (1,712 nodes, 5,136 dof)."""
    ca = select_nodes(adk_open, "ca").coords
    extent = np.ptp(ca, axis=0)
    cells = np.indices((2, 2, 2)).reshape(3, -1).T * extent
    return anm_hessian((ca[None] + cells[:, None]).reshape(-1, 3))


@pytest.fixture
def fresh_log(monkeypatch, caplog):
    """Every factoriser choice logged anew; INFO records captured."""
    monkeypatch.setattr(eigensolver, "_announced", set())
    monkeypatch.delenv(eigensolver.FACTORISER_ENV, raising=False)
    caplog.set_level(logging.INFO, logger=eigensolver.__name__)
    return caplog


@pytest.fixture
def without_cvxopt(monkeypatch):
    """cvxopt made unimportable, whether or not it is installed."""
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "cvxopt" or name.startswith("cvxopt."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def subspace_overlap(a, b):
    """RMS cosine of the principal angles between the row spaces of a and b (orthonormal)."""
    return float(np.sqrt(np.sum((a @ b.T) ** 2) / len(a)))


def test_cholmod_and_superlu_give_the_same_modes(block_network, fresh_log):
    pytest.importorskip("cvxopt")
    superlu = nontrivial_modes(block_network, 20, method="sparse", factoriser="superlu")
    cholmod = nontrivial_modes(block_network, 20, method="sparse", factoriser="cholmod")
    np.testing.assert_allclose(cholmod.eigenvalues, superlu.eigenvalues, rtol=1e-9)
    assert subspace_overlap(cholmod.vectors, superlu.vectors) > 0.999
    assert subspace_overlap(cholmod.rigid_vectors, superlu.rigid_vectors) > 0.999
    messages = [record.getMessage() for record in fresh_log.records]
    assert any("superlu (asked for)" in m for m in messages)
    assert any("cholmod (asked for)" in m for m in messages)


def test_auto_takes_cholmod_for_large_networks_when_cvxopt_imports(block_network, fresh_log):
    pytest.importorskip("cvxopt")
    assert block_network.shape[0] >= eigensolver.CHOLMOD_MIN_DOF
    nontrivial_modes(block_network, 4, method="sparse", factoriser="auto")
    nontrivial_modes(block_network, 4, method="sparse", factoriser="auto")
    chosen = [r.getMessage() for r in fresh_log.records if "factoriser" in r.getMessage()]
    assert len(chosen) == 1  # logged once
    assert "CHOLMOD" in chosen[0]


def test_auto_falls_back_to_superlu_without_cvxopt(block_network, fresh_log, without_cvxopt):
    spectrum = nontrivial_modes(block_network, 4, method="sparse")
    assert len(spectrum.rigid_eigenvalues) == 6 and spectrum.eigenvalues.min() > 0
    chosen = [r.getMessage() for r in fresh_log.records if "factoriser" in r.getMessage()]
    assert len(chosen) == 1
    assert "SuperLU" in chosen[0] and "cvxopt does not import" in chosen[0]
    assert "cryomotion[nma-fast]" in chosen[0]


def test_auto_keeps_superlu_for_small_networks(adk_open, fresh_log):
    hessian = anm_hessian(select_nodes(adk_open, "ca").coords)  # 642 dof
    assert hessian.shape[0] < eigensolver.CHOLMOD_MIN_DOF
    nontrivial_modes(hessian, 4, method="sparse")
    chosen = [r.getMessage() for r in fresh_log.records if "factoriser" in r.getMessage()]
    assert chosen and "SuperLU" in chosen[0] and "below" in chosen[0]


def test_forced_cholmod_without_cvxopt_names_the_extra(block_network, fresh_log, without_cvxopt):
    with pytest.raises(InputError, match=r"cryomotion\[nma-fast\]") as raised:
        nontrivial_modes(block_network, 4, method="sparse", factoriser="cholmod")
    assert "\n" not in str(raised.value)


def test_environment_variable_forces_the_factoriser(block_network, fresh_log, monkeypatch):
    monkeypatch.setenv(eigensolver.FACTORISER_ENV, "superlu")
    nontrivial_modes(block_network, 4, method="sparse")
    chosen = [r.getMessage() for r in fresh_log.records if "factoriser" in r.getMessage()]
    assert chosen == ["sparse factoriser: superlu (asked for)"]


@pytest.mark.parametrize("source", ["keyword", "environment"])
def test_unknown_factoriser_is_an_input_error(block_network, fresh_log, monkeypatch, source):
    keyword = "umfpack" if source == "keyword" else None
    if source == "environment":
        monkeypatch.setenv(eigensolver.FACTORISER_ENV, "umfpack")
    expected = "factoriser" if source == "keyword" else eigensolver.FACTORISER_ENV
    with pytest.raises(InputError, match=f"{expected} 'umfpack': expected 'auto'"):
        nontrivial_modes(block_network, 4, method="sparse", factoriser=keyword)


def test_cholmod_solve_inverts_the_shifted_matrix(block_network):
    pytest.importorskip("cvxopt")
    dof = block_network.shape[0]
    shifted = (block_network + 1e-3 * np.abs(block_network.diagonal()).max() * _eye(dof)).tocsc()
    solve = eigensolver._cholmod_solver(shifted)
    rhs = np.random.default_rng(2).standard_normal(dof)
    solution = solve(rhs)
    assert solution.shape == (dof,)
    assert np.linalg.norm(shifted @ solution - rhs) < 1e-10 * np.linalg.norm(rhs)


def test_cholmod_refuses_an_indefinite_matrix(block_network):
    pytest.importorskip("cvxopt")
    dof = block_network.shape[0]
    shifted = (block_network - 1e-3 * np.abs(block_network.diagonal()).max() * _eye(dof)).tocsc()
    with pytest.raises(ArithmeticError):
        eigensolver._cholmod_solver(shifted)


def _eye(dof):
    import scipy.sparse as sp

    return sp.identity(dof, format="csc")

"""The ANM Hessian against ProDy's, the neighbour list against brute force, bad networks."""

import numpy as np
import pytest

from cryomotion.dynamics.elastic_network import (
    DisconnectedNetworkError,
    anm_hessian,
    contact_pairs,
    spring_constants,
)
from cryomotion.dynamics.nodes import select_nodes
from cryomotion.errors import InputError

prody = pytest.importorskip("prody")
prody.confProDy(verbosity="none")


@pytest.fixture(scope="module")
def adk_ca(adk_open):
    return select_nodes(adk_open, "ca").coords


def test_contact_pairs_match_brute_force(adk_ca):
    i, j = contact_pairs(adk_ca, 12.0)
    distances = np.linalg.norm(adk_ca[:, None] - adk_ca[None], axis=2)
    expected_i, expected_j = np.nonzero(np.triu(distances <= 12.0, k=1))
    np.testing.assert_array_equal(i, expected_i)
    np.testing.assert_array_equal(j, expected_j)


@pytest.mark.parametrize("cutoff", [8.0, 15.0])
def test_hessian_equals_prody(adk_ca, cutoff):
    hessian = anm_hessian(adk_ca, cutoff=cutoff, gamma=2.5)
    anm = prody.ANM()
    anm.buildHessian(adk_ca, cutoff=cutoff, gamma=2.5)
    np.testing.assert_allclose(hessian.toarray(), anm.getHessian(), atol=1e-12)
    assert abs(hessian - hessian.T).max() == 0


def test_distance_dependent_springs_equal_prody_custom_gamma(adk_ca):
    def gamma(distance2, i, j):
        return 1.5 * (3.8**2 / distance2)

    hessian = anm_hessian(adk_ca, cutoff=15.0, gamma=1.5, distance_exponent=2.0)
    anm = prody.ANM()
    anm.buildHessian(adk_ca, cutoff=15.0, gamma=gamma)
    np.testing.assert_allclose(hessian.toarray(), anm.getHessian(), atol=1e-12)


def test_spring_constants():
    np.testing.assert_allclose(spring_constants([3.8, 7.6], 2.0, 2.0), [2.0, 0.5])
    np.testing.assert_allclose(spring_constants([3.8, 7.6], 2.0), [2.0, 2.0])


def test_rows_of_the_hessian_sum_to_zero(adk_ca):
    # A rigid translation costs no energy: H @ (t, t, ..., t) = 0.
    hessian = anm_hessian(adk_ca)
    translation = np.tile([0.3, -1.0, 2.0], len(adk_ca))
    assert np.abs(hessian @ translation).max() < 1e-10


def test_disconnected_network_is_a_clear_error(adk_open, tiled):
    far_apart = tiled(adk_open, copies=2, gap=40.0)
    nodes = select_nodes(far_apart, "ca")
    with pytest.raises(DisconnectedNetworkError) as caught:
        anm_hessian(nodes.coords, cutoff=15.0, labels=nodes.labels)
    message = str(caught.value)
    assert "disconnected" in message and "2 separate parts" in message
    assert "214" in message and "B:" in message and "\n" not in message
    assert caught.value.component_sizes == [214, 214]
    assert isinstance(caught.value, InputError)


def test_isolated_node_is_reported():
    coords = np.array([[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0], [0, 0, 3.8], [50.0, 0, 0]])
    with pytest.raises(DisconnectedNetworkError, match="2 separate parts of 4, 1 nodes"):
        anm_hessian(coords, cutoff=10.0)


def test_coincident_nodes_and_bad_parameters_are_errors(adk_ca):
    doubled = np.concatenate([adk_ca, adk_ca[:1]])
    with pytest.raises(InputError, match="coincide"):
        anm_hessian(doubled)
    with pytest.raises(InputError, match="cutoff"):
        anm_hessian(adk_ca, cutoff=0.0)
    with pytest.raises(InputError, match="gamma"):
        anm_hessian(adk_ca, gamma=-1.0)

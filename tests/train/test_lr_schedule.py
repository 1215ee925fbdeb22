"""The learning-rate schedule: the cosine's end points and midpoint, analytically."""

import math

import pytest

from cryomotion.train.lr_schedule import learning_rate_factor


def test_constant_is_one_everywhere():
    assert [learning_rate_factor("constant", p) for p in (0, 0.3, 1)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("final", [0.1, 0.5, 1.0])
def test_cosine_runs_from_one_to_final_through_their_mean(final):
    assert learning_rate_factor("cosine", 0.0, final) == pytest.approx(1.0)
    assert learning_rate_factor("cosine", 0.5, final) == pytest.approx((1 + final) / 2)
    assert learning_rate_factor("cosine", 1.0, final) == pytest.approx(final)
    quarter = final + (1 - final) * (1 + math.cos(math.pi / 4)) / 2
    assert learning_rate_factor("cosine", 0.25, final) == pytest.approx(quarter)
    # past either end it holds its end value, and it never rises
    assert learning_rate_factor("cosine", 1.5, final) == pytest.approx(final)
    values = [learning_rate_factor("cosine", k / 20, final) for k in range(21)]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="expected one of"):
        learning_rate_factor("step", 0.5)

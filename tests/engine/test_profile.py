"""Arrival profiles: the arrivals a profile gives follow its rate, second by second. Pure."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.config import schema as config
from loadgen.engine import profile as profiles
from loadgen.report.summary import planned_rate

pytestmark = pytest.mark.unit


def per_second(arrivals: np.ndarray, seconds: int) -> np.ndarray:
    return np.histogram(arrivals, bins=seconds, range=(0, seconds))[0]


@pytest.mark.parametrize(
    "shape",
    [
        profiles.constant(120, 10),
        profiles.ramp(50, 250, 10),
        profiles.ramp(300, 0, 10),
        profiles.steps([(100, 3), (0, 2), (250, 5)]),
        profiles.points([(0, 100), (4, 200), (7, 60)], end_s=10),
        profiles.points([(0, 100), (4, 200), (7, 60)], end_s=10, linear=True),
    ],
)
def test_even_arrivals_follow_the_rate_within_one_per_second(shape):
    arrivals = shape.arrivals()
    assert np.all(np.diff(arrivals) >= 0) and arrivals[0] >= 0 and arrivals[-1] < shape.duration_s
    expected = np.array([shape.count_between(t, t + 1) for t in range(10)])
    assert np.all(np.abs(per_second(arrivals, 10) - expected) <= 1)
    assert abs(arrivals.size - shape.expected) <= 1


def test_diablo_points_hold_each_rate_until_the_next_point():
    shape = profiles.points([(0, 10), (30, 20), (40, 0)], end_s=60)
    assert [shape.count_between(t, t + 1) for t in (0, 29, 30, 39, 40, 59)] == [10, 10, 20, 20, 0, 0]
    assert shape.expected == 10 * 30 + 20 * 10
    linear = profiles.points([(0, 10), (30, 20)], end_s=40, linear=True)
    assert linear.count_between(15, 16) == pytest.approx(15 + 1 / 6) and linear.count_between(35, 36) == 20


def test_poisson_arrivals_have_the_mean_rate_and_exponential_gaps():
    shape = profiles.constant(200, 50, poisson=True)
    arrivals = shape.arrivals(seed=7)
    assert abs(arrivals.size - 10_000) < 4 * np.sqrt(10_000)
    gaps = np.diff(arrivals)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.05)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.1)  # exponential: std = mean
    assert np.array_equal(arrivals, shape.arrivals(seed=7))  # reproducible from the seed
    assert not np.array_equal(arrivals, shape.arrivals(seed=8))


def test_a_profile_is_dealt_round_robin_so_each_worker_keeps_its_order():
    experiment = config.from_dict(
        {"workload": {"kind": "transfer", "workers": 3, "profile": {"shape": "ramp", "from_tps": 10, "to_tps": 50, "duration_s": 5}}}
    )
    (phase,) = experiment.plan(["http://a"], 1).phases
    assert phase.fixed_slots and phase.transactions == 150 and phase.items == (50, 50, 50)
    times = [phase.slot_time(0.0, w, k) for w in range(3) for k in range(phase.items[w])]
    assert all(phase.slot_time(0.0, w, k) < phase.slot_time(0.0, w, k + 1) for w in range(3) for k in range(49))
    assert sorted(times) == list(profiles.ramp(10, 50, 5).arrivals())


def test_a_profile_and_a_constant_rate_are_exclusive_and_one_is_needed():
    base = {"kind": "transfer", "rate_tps": 10, "duration_s": 5}
    with pytest.raises(config.ConfigError, match="not both"):
        config.from_dict({"workload": base | {"profile": {"shape": "constant", "rate_tps": 1, "duration_s": 1}}})
    with pytest.raises(config.ConfigError, match="end_s must come after"):
        config.from_dict(
            {"workload": {"kind": "transfer", "profile": {"shape": "points", "points": [{"t": 1, "rate_tps": 1}], "end_s": 0.5}}}
        )


def test_the_report_draws_the_profile_of_a_rate_driven_run_only():
    transfer = config.from_dict({"workload": {"kind": "transfer", "rate_tps": 10, "duration_s": 5}})
    assert planned_rate({"config": config.to_public_dict(transfer)}).expected == 50
    fl = config.from_dict({"workload": {"kind": "fl-round", "model_length": 10, "pace_s": 1}})
    assert planned_rate({"config": config.to_public_dict(fl)}) is None
    assert planned_rate({}) is None

"""The generator's verdict alone: figures in, verdict out."""

from __future__ import annotations

import pytest

from loadgen.engine.capacity import GeneratorLoad, judge, lag_bound_s

pytestmark = pytest.mark.unit


def load(**kw) -> GeneratorLoad:
    base = dict(lag_p99_s=0.004, interval_s=0.5, busy=(0.3, 0.4, 0.35), actors=2, cpu_s=2.0, sent=4_000, phase_s=10.0)
    return GeneratorLoad(**(base | kw))


def test_a_run_that_kept_its_schedule_measured_the_chain():
    v = judge(load())
    assert not v.bound and v.reason is None
    assert v.cpu_per_tx_ms == pytest.approx(0.5)
    assert v.offered_tps == pytest.approx(400)
    assert v.actors_needed == 1  # 400 tx/s × 0.5 ms = 0.2 of a core


def test_the_lag_bound_scales_with_the_pace_above_a_floor():
    assert lag_bound_s(None) == lag_bound_s(0.01) == 0.1
    assert lag_bound_s(2.0) == 0.5
    assert not judge(load(lag_p99_s=0.4, interval_s=2.0)).bound
    assert judge(load(lag_p99_s=0.6, interval_s=2.0)).bound


def test_an_experiment_s_own_lag_bound_replaces_the_default():
    loose = judge(load(lag_p99_s=0.6, interval_s=2.0, max_lag_s=1.0))
    assert not loose.bound and loose.lag_bound_s == 1.0
    strict = judge(load(lag_p99_s=0.06, interval_s=2.0, max_lag_s=0.05))
    assert strict.bound and "schedule lag p99 0.060 s > 0.050 s" in strict.reason


def test_lag_beyond_the_bound_says_how_many_actors_the_rate_needs():
    busy = (0.97, 0.99, 0.98)
    v = judge(load(lag_p99_s=0.8, cpu_s=12.0, sent=10_000, phase_s=5.0, actors=2, busy=busy))  # 2,000 tx/s × 1.2 ms = 2.4 cores
    assert v.bound
    assert v.actors_needed == 5
    assert "schedule lag p99 0.800 s > 0.125 s" in v.reason
    assert "needs ≥ 5 sender actors (run.actors), 2 ran" in v.reason
    assert "needs" not in judge(load(lag_p99_s=0.8, cpu_s=12.0, sent=10_000, phase_s=5.0, actors=2)).reason  # CPU left: not actors


def test_a_sender_at_its_cpu_limit_most_of_the_run_is_generator_bound_even_on_schedule():
    v = judge(load(busy=(0.95, 0.97, 0.99, 0.5)))
    assert v.bound and v.busy_share == 0.75
    assert "CPU limit 75% of the run" in v.reason
    assert not judge(load(busy=(0.95, 0.5, 0.5, 0.5))).bound  # a burst is not a limit


def test_lag_with_actors_enough_points_at_what_else_held_the_senders():
    v = judge(load(lag_p99_s=1.0))
    assert v.bound and "the senders had CPU left" in v.reason
    v = judge(load(lag_p99_s=1.0, busy=(1.0, 1.0), cpu_s=0.5))
    assert v.bound and "cores of their own" in v.reason


def test_lag_a_slow_node_caused_in_the_open_model_is_the_chains_not_the_generators():
    v = judge(load(lag_p99_s=0.8, answer_p99_s=2.0))  # the node left the sends unanswered; the senders idled
    assert not v.bound and v.lag_from_node and v.reason is None
    assert judge(load(lag_p99_s=0.8, answer_p99_s=0.01)).bound  # the node answered at once: the lag was the generator's
    assert judge(load(lag_p99_s=0.8, answer_p99_s=2.0, closed_loop=True)).bound  # a closed loop's waits are its own
    assert judge(load(lag_p99_s=0.8, answer_p99_s=2.0, busy=(1.0, 1.0, 1.0))).bound  # out of CPU all the same

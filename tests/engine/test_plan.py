"""The pure planning layer: exact schedules, no Ray, no chain."""

from __future__ import annotations

import itertools

import pytest

from loadgen.config import schema as config
from loadgen.workloads.fl_round import workload as fl_round

pytestmark = pytest.mark.unit


def fl(**workload):
    return config.from_dict({"workload": {"kind": "fl-round", "model_length": 2_500, "pace_s": 0.5, **workload}})


def test_fl_round_has_commit_then_reveal_with_one_tx_per_chunk():
    p = fl(redundancy=3, pools=2, epochs=2).plan(["http://a", "http://b"], 4)
    commit, reveal = p.phases
    assert (commit.name, reveal.name) == ("commit", "reveal")
    assert commit.items == (1,) * 6
    assert reveal.items == (3,) * 6  # 2,500 values in chunks of 1,000
    assert p.transactions == 2 * (6 + 18)
    assert p.epochs == 2


def test_workers_are_assigned_round_robin_to_endpoints_and_actors():
    p = fl(redundancy=2, pools=3).plan(["http://a", "http://b"], 4)
    assert [w.endpoint for w in p.workers] == ["http://a", "http://b"] * 3
    assert [w.actor for w in p.workers] == [0, 1, 2, 3, 0, 1]
    assert [w.pool for w in p.workers] == [0, 0, 1, 1, 2, 2]
    assert [w.key_index for w in p.workers] == [1, 2, 3, 4, 5, 6]  # 0 is the coordinator
    assert [w.worker for w in p.workers_of(1)] == [1, 5]


def test_slot_times_are_computed_not_accumulated():
    reveal = fl(pace_s=0.1, model_length=10_000_000, spread=False).plan(["http://a"], 1).phases[1]
    t0 = 1_700_000_000.0
    # adding 0.1 ten million times drifts; t0 + k·pace does not
    assert reveal.slot_time(t0, 0, 9_999_999) == t0 + 9_999_999 * 0.1
    accumulated = t0
    for _ in range(1_000_000):
        accumulated += 0.1
    assert accumulated != reveal.slot_time(t0, 0, 1_000_000)


def test_reveal_spread_staggers_workers_over_one_pace():
    reveal = fl(redundancy=4, pace_s=1.0).plan(["http://a"], 1).phases[1]
    assert reveal.schedule.offsets_s == (0.0, 0.25, 0.5, 0.75)
    commit = fl(redundancy=4, pace_s=1.0).plan(["http://a"], 1).phases[0]
    assert commit.schedule.offsets_s == (0.0,) * 4  # commitments all at once, as in the study
    unspread = fl(redundancy=4, pace_s=1.0, spread=False).plan(["http://a"], 1).phases[1]
    assert unspread.schedule.offsets_s == (0.0,) * 4


@pytest.mark.parametrize(("rate", "duration", "workers"), [(100, 20, 10), (7, 3, 3), (1, 1, 1), (50, 2.5, 8), (10, 1, 30)])
def test_array_copy_offers_exactly_rate_times_duration(rate, duration, workers):
    cfg = config.from_dict(
        {"workload": {"kind": "array-copy", "array_size": 1_000, "rate_tps": rate, "duration_s": duration, "workers": workers}}
    )
    (phase,) = cfg.plan(["http://a"], 2).phases
    assert phase.transactions == round(rate * duration)
    assert phase.fixed_slots
    times = sorted(phase.slot_time(0.0, w, k) for w in range(workers) for k in range(phase.items[w]))
    assert times[-1] < duration
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps <= {round(1 / rate, 9)}  # one transaction every 1/rate seconds, overall


def test_gas_limits_follow_the_workload_unless_configured():
    commit, reveal = fl(chunk_size=1_000).plan(["http://a"], 1).phases
    assert commit.gas_limit == fl_round.COMMIT_GAS
    assert reveal.gas_limit == fl_round.REVEAL_BASE_GAS + 1_000 * fl_round.REVEAL_GAS_PER_VALUE
    fixed = config.from_dict({"chain": {"gas_limit": 3_000_000}, "workload": {"kind": "fl-round", "model_length": 10, "pace_s": 1}})
    assert {p.gas_limit for p in fixed.plan(["http://a"], 1).phases} == {3_000_000}


def test_duration_is_last_slot_of_the_slowest_worker():
    reveal = fl(redundancy=2, pace_s=0.5, model_length=3_000).plan(["http://a"], 1).phases[1]
    assert reveal.duration_s == pytest.approx(0.25 + 2 * 0.5)


def test_a_key_offset_moves_every_worker_key_and_never_the_coordinator():
    from loadgen.engine.plan import assign_workers

    plain = assign_workers(4, 2, ["http://a", "http://b"], 2)
    moved = assign_workers(4, 2, ["http://a", "http://b"], 2, key_offset=1_000)
    assert [w.key_index for w in plain] == [1, 2, 3, 4]
    assert [w.key_index for w in moved] == [1_001, 1_002, 1_003, 1_004]
    assert [(w.pool, w.endpoint, w.actor) for w in plain] == [(w.pool, w.endpoint, w.actor) for w in moved]

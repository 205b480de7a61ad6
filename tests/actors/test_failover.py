"""Endpoints that die mid-run, on a real Anvil behind two fault proxies (two endpoints of one
chain): the workers carry on through the endpoint that answers, the block watcher follows it too,
a revived endpoint is used again, and every scheduled transaction has one row whose status the
chain confirms. Off, failover leaves a worker on its dead endpoint and says so, row by row."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loadgen.chains.chain import connect
from loadgen.config import schema as config
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import assert_the_chain_agrees, execute, fl_experiment, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos]

RATE, SECONDS, WORKERS = 20, 8, 4
SCHEDULED = RATE * SECONDS


def experiment(endpoints: list[str], key_offset: int, **run) -> config.Experiment:
    return config.from_dict(
        {
            "chain": {"endpoints": endpoints},
            "workload": {"kind": "array-copy", "array_size": 50, "rate_tps": RATE, "duration_s": SECONDS, "workers": WORKERS},
            "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 1.0, "key_offset": key_offset} | run,
        }
    )


def after_sends(faults: Faults, n: int, *actions: tuple[float, Callable[[], None]]) -> threading.Thread:
    """Once the proxy has seen ``n`` worker sends, runs each action ``delay`` seconds later."""

    def play() -> None:
        while faults.sends < n:
            time.sleep(0.01)
        start = time.monotonic()
        for delay, action in actions:
            time.sleep(max(0.0, start + delay - time.monotonic()))
            action()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def rows_of(table: pa.Table, **where) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]


def assert_every_slot_has_one_row_and_the_chain_agrees(w3, table: pa.Table) -> None:
    keys = list(zip(*(table.column(c).to_pylist() for c in ("worker", "chunk_index")), strict=True))
    assert len(keys) == len(set(keys)) == SCHEDULED  # rate-driven: one row per slot, whatever happened to it
    assert_the_chain_agrees(w3, table)
    committed = table.filter(pc.equal(table.column("status"), "committed"))
    for row in committed.to_pylist()[:: max(1, committed.num_rows // 20)]:
        assert w3.eth.get_transaction_receipt(row["tx_hash"])["status"] == 1


def test_a_dead_endpoint_s_workers_carry_on_through_the_other_and_come_back_when_it_does(chain, tmp_path):
    a_faults, b_faults = Faults(), Faults()
    with FaultProxy(chain.url, a_faults) as a, FaultProxy(chain.url, b_faults) as b:
        # B dies a third of the way in and answers again 2.5 s later
        after_sends(b_faults, SCHEDULED // 2 // 3, (0.0, b.kill), (2.5, b.revive))
        result, table = execute(experiment([a.url, b.url], 20_000), tmp_path)
    w3 = connect(chain.url)
    assert_every_slot_has_one_row_and_the_chain_agrees(w3, table)
    counts = statuses(table)
    refused = rows_of(table, status="rejected")
    # only the sends that found B dead before it counted as down are refused, and they said why
    assert 0 < len(refused) <= 3 * 2 + 2
    assert all(r["endpoint"] == b.url and r["error"].startswith("connection") for r in refused)
    # a refused slot's transaction went again in the worker's next slot: at most the last ones stay unsent
    assert counts["committed"] >= SCHEDULED - len(refused)
    assert counts.get("dropped", 0) == 0
    b_workers = {1, 3}
    moved = [r for r in table.to_pylist() if r["worker"] in b_workers and r["endpoint"] == a.url and r["status"] == "committed"]
    assert moved, "B's workers sent through A while B was down"
    last_b = max(r["t_sent"] for r in table.to_pylist() if r["endpoint"] == b.url and r["status"] == "committed")
    assert last_b > min(r["t_sent"] for r in moved), "and went home once B answered again"
    assert result.summary["failovers"] >= 2
    events = result.summary["endpoint_events"]
    assert [(e["endpoint"], e["up"]) for e in events if e["endpoint"] == b.url][:2] == [(b.url, False), (b.url, True)]
    assert all(e["endpoint"] == b.url for e in events)


def test_the_watcher_s_endpoint_dies_and_no_inclusion_is_missed(chain, tmp_path):
    a_faults = Faults()
    with FaultProxy(chain.url, a_faults) as a, FaultProxy(chain.url, Faults()) as b:
        after_sends(a_faults, SCHEDULED // 2 // 3, (0.0, a.kill))  # A: endpoint 0, the block watcher's
        result, table = execute(experiment([a.url, b.url], 21_000), tmp_path)
    w3 = connect(chain.url)
    assert_every_slot_has_one_row_and_the_chain_agrees(w3, table)
    counts = statuses(table)
    assert counts.get("dropped", 0) == 0, rows_of(table, status="dropped")[:3]
    assert counts["committed"] >= SCHEDULED - counts.get("rejected", 0)
    reasons = [e["reason"] for e in result.summary["endpoint_events"] if e["endpoint"] == a.url]
    assert any(r.startswith(f"the block watcher follows {b.url}") for r in reasons)


def test_with_failover_off_a_dead_endpoint_s_workers_stay_and_their_refusals_are_recorded(chain, tmp_path):
    b_faults = Faults()
    with FaultProxy(chain.url, Faults()) as a, FaultProxy(chain.url, b_faults) as b:
        after_sends(b_faults, SCHEDULED // 2 // 3, (0.0, b.kill))
        result, table = execute(experiment([a.url, b.url], 22_000, failover=False), tmp_path)
    assert_every_slot_has_one_row_and_the_chain_agrees(connect(chain.url), table)
    b_rows = [r for r in table.to_pylist() if r["worker"] in {1, 3}]
    assert {r["endpoint"] for r in b_rows} == {b.url}
    refused = [r for r in b_rows if r["status"] in ("rejected", "unsent")]
    assert len(refused) >= SCHEDULED // 2 // 2  # the better part of B's slots came after its death
    assert result.summary["failovers"] == 0
    assert any(e["endpoint"] == b.url and not e["up"] for e in result.summary["endpoint_events"])


def test_a_round_whose_first_endpoint_dies_mid_reveal_is_coordinated_through_the_other(chain, tmp_path):
    # endpoint 0 is the coordinator's, the block watcher's and half the workers': it dies in the
    # reveal, and the round still closes and elects through the other endpoint
    a_faults = Faults()
    with FaultProxy(chain.url, a_faults) as a, FaultProxy(chain.url, Faults()) as b:
        after_sends(a_faults, 12, (0.0, a.kill))
        experiment = fl_experiment([a.url, b.url], run={"key_offset": 23_000}, model_length=2_000, chunk_size=200, pace_s=0.2)
        result, table = execute(experiment, tmp_path)
    assert statuses(table).get("dropped", 0) == 0
    assert_the_chain_agrees(connect(chain.url), table)
    (round_,) = result.summary["rounds"]
    assert all(p["expected"] for p in round_["pools"])
    assert any(e["endpoint"] == a.url and not e["up"] for e in result.summary["endpoint_events"])

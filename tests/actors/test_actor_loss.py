"""Ray actors killed mid-run (SIGKILL of the process), on a real Anvil: the run goes on, a new
sender actor takes the lost one's workers over, rows the lost one never handed over are rebuilt
from the chain (``recovered``), and what the chain holds is what the rows say. A lost block
watcher's successor starts from the block after the last one handed over."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loadgen.chains.chain import connect
from loadgen.config import schema as config
from loadgen.engine.hosting.ray_host import RayHost
from loadgen.engine.rig import Rig
from loadgen.engine.run import Run
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import assert_the_chain_agrees, fl_experiment, pid_alive, pid_of, run_killing, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos]


def rate_experiment(url: str, key_offset: int, duration_s: float = 8) -> config.Experiment:
    return config.from_dict(
        {
            "chain": {"endpoints": [url]},
            "workload": {"kind": "array-copy", "array_size": 20, "rate_tps": 20, "duration_s": duration_s, "workers": 4},
            "run": {"actors": 2, "commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 1.0, "key_offset": key_offset},
        }
    )


def test_a_killed_sender_actor_is_replaced_and_every_slot_keeps_one_true_row(chain, tmp_path):
    # each transaction reaches the node a second after it is sent: at any moment the lost actor
    # has some the node holds and it had not handed over yet. Killed about 3 s into a 16 s phase,
    # its workers go to the spare process started with the run, not to one that must start (tens
    # of seconds on a busy machine)
    events: list[str] = []
    with FaultProxy(chain.url, Faults(delay_s=1.0)) as proxy:
        result, table = run_killing(rate_experiment(proxy.url, 50_000, duration_s=16), tmp_path, "sender", events=events)
    assert result.summary["actors_replaced"] == 1
    assert "sender actor 1 was lost: a spare process took its 2 workers over, from what the chain holds" in events
    keys = list(zip(table.column("worker").to_pylist(), table.column("chunk_index").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == 320  # one row per slot, the lost actor's included
    counts = statuses(table)
    assert set(counts) <= {"committed", "unsent"}, counts
    rows = table.to_pylist()
    recovered = [r for r in rows if r["recovered"]]
    assert recovered and result.summary["recovered"] == len(recovered)
    assert all(r["worker"] in (1, 3) for r in recovered)  # actor 1's workers
    lost = [r for r in recovered if r["status"] == "unsent"]
    assert all(r["error"] == "its sender actor was lost: nothing of it reached the chain" for r in lost)
    rebuilt = [r for r in recovered if r["status"] == "committed"]
    assert rebuilt and all(r["t_sent"] is None and r["block_number"] is not None for r in rebuilt)
    # the replacement went on sending for them
    resumed = [r["t_sent"] for r in rows if r["worker"] in (1, 3) and not r["recovered"] and r["t_sent"] is not None]
    assert max(resumed) > max(r["t_scheduled"] for r in recovered)
    assert_the_chain_agrees(connect(chain.url), table)


def test_a_round_whose_sender_actor_dies_mid_reveal_still_elects_its_models(chain, tmp_path):
    # without a spare: a process starts for the lost actor's workers
    run = {"actors": 2, "key_offset": 51_000, "spare_actors": 0}
    experiment = fl_experiment([chain.url], run=run, model_length=20 * 100, chunk_size=100, pace_s=0.25, redundancy=2, pools=2)
    events: list[str] = []
    result, table = run_killing(experiment, tmp_path, "sender", at_progress=2, events=events)
    assert result.summary["actors_replaced"] == 1
    assert any(e.startswith("sender actor 1 was lost: a new process took its") for e in events), events
    committed = table.filter(pc.equal(table.column("status"), "committed"))
    per_worker = Counter(committed.column("worker").to_pylist())
    assert per_worker == {w: 1 + 20 for w in range(4)}  # paced: every chunk of every worker, lost actor or not
    assert all(r["status"] == "committed" for r in table.to_pylist() if r["recovered"])
    assert_the_chain_agrees(connect(chain.url), table)
    (round_,) = result.summary["rounds"]
    assert all(p["votes"] == 2 and p["expected"] for p in round_["pools"])


def test_a_killed_watcher_s_successor_misses_no_inclusion(chain, tmp_path):
    result, table = run_killing(rate_experiment(chain.url, 52_000), tmp_path, "watcher")
    counts = statuses(table)
    assert counts == {"committed": 160}, counts
    assert_the_chain_agrees(connect(chain.url), table)
    blocks = pq.read_table(result.run_dir / "blocks.parquet").column("number").to_pylist()
    assert blocks == list(range(min(blocks), max(blocks) + 1))  # no block skipped, none twice


def test_actors_lost_between_two_runs_of_a_series_are_replaced_before_the_next_one(chain, tmp_path):
    # a search keeps its actors from trial to trial (the rig): one that died meanwhile must not end the search
    with Rig(RayHost()) as rig:  # the chain fixture's Ray
        first = Run(rate_experiment(chain.url, 60_000), tmp_path, metrics_port=0, metrics_linger_s=0, rig=rig).execute()
        assert rig.fleet is not None
        for handle in (rig.fleet.actors[1], next(iter(rig.fleet.watchers.values()))):
            pid = pid_of(handle)
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.05)
        second = Run(rate_experiment(chain.url, 61_000), tmp_path, metrics_port=0, metrics_linger_s=0, rig=rig).execute()
    for result in (first, second):
        table = pq.read_table(result.run_dir / "transactions.parquet")
        assert statuses(table) == {"committed": 160}, statuses(table)
        assert_the_chain_agrees(connect(chain.url), table)
    assert second.summary["actors_replaced"] == 1
    assert first.summary.get("actors_replaced") is None

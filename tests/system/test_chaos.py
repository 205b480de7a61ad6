"""The chaos suite on real four-node networks: a sender actor killed, a node stalled (SIGSTOP) and
then its process resumed, the block watcher's node killed (the chain goes on with three). For
each: the run ends on its own with its exit code, every slot has one row, nothing is `dropped`,
and the transactions the chain holds from the workers' accounts are exactly the `committed` rows.

geth 1.10.3 clique (built from the Go module proxy) runs in `make test`; GoQuorum QBFT, the same
scenarios, with `make test-goquorum` (see tests/chains/test_goquorum.py for why)."""

from __future__ import annotations

import os
import signal
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.config import schema as config
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run
from loadgen.engine.verdict import EXIT_CODES
from tests.support.runs import assert_the_chain_agrees, local_ray, pid_alive, run_killing, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos]

RATE, SECONDS, WORKERS = 16, 15, 8
SCHEDULED = RATE * SECONDS
STALL_S = 15.0  # longer than a send's 10 s timeout


@pytest.fixture(
    scope="module",
    params=[pytest.param("clique", id="geth-clique"), pytest.param("qbft", marks=pytest.mark.goquorum, id="goquorum-qbft")],
)
def network(request):
    if request.param == "clique":
        settings = GethNetworkSettings(nodes=4)
    else:
        settings = GethNetworkSettings(nodes=4, consensus="qbft", gas_price=0, block_gas_limit=700_000_000)
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(settings) as net:
        yield net


def transfers(urls: list[str], key_offset: int) -> config.Experiment:
    return config.from_dict(
        {
            "chain": {"endpoints": urls},
            "workload": {"kind": "transfer", "rate_tps": RATE, "duration_s": SECONDS, "workers": WORKERS},
            "run": {"actors": 2, "commit_timeout_s": 30, "lead_time_s": 1, "gap_check_s": 2.0, "key_offset": key_offset},
        }
    )


def assert_honest(result, table: pa.Table, network: GethNetwork) -> dict[str, int]:
    assert result.exit_code == EXIT_CODES[result.summary["verdict"]]
    keys = list(zip(table.column("worker").to_pylist(), table.column("chunk_index").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == SCHEDULED
    counts = statuses(table)
    assert counts.get("dropped", 0) == 0, counts
    alive = next(u for u, p in zip(network.urls, network.pids, strict=True) if pid_alive(p))
    assert_the_chain_agrees(connect(alive), table)
    return counts


def test_a_killed_sender_actor(network, tmp_path):
    result, table = run_killing(transfers(network.urls, 60_000), tmp_path, "sender", at_progress=4)
    counts = assert_honest(result, table, network)
    assert result.summary["actors_replaced"] == 1
    assert counts["committed"] >= SCHEDULED * 0.7, counts


def test_a_stalled_node(network, tmp_path):
    stalled = network.pids[2]
    started = threading.Event()

    def on_progress(p: Progress) -> None:
        if not started.is_set() and p.elapsed_s > 0 and p.stats.sent > RATE * 3:
            started.set()
            os.kill(stalled, signal.SIGSTOP)
            threading.Timer(STALL_S, os.kill, (stalled, signal.SIGCONT)).start()

    try:
        result = Run(transfers(network.urls, 61_000), tmp_path, metrics_port=0, metrics_linger_s=0, on_progress=on_progress).execute()
    finally:
        os.kill(stalled, signal.SIGCONT)
    table = pq.read_table(result.run_dir / "transactions.parquet")
    counts = assert_honest(result, table, network)
    assert started.is_set()
    assert any(e["endpoint"] == network.urls[2] and not e["up"] for e in result.summary["endpoint_events"])
    assert result.summary["failovers"] > 0
    assert counts["committed"] >= SCHEDULED * 0.7, counts


def test_the_watcher_s_node_killed_and_the_chain_goes_on_with_three(network, tmp_path):
    node0 = network.pids[0]

    def on_progress(p: Progress) -> None:
        if pid_alive(node0) and p.stats.sent > RATE * 3:
            os.kill(node0, signal.SIGKILL)

    result = Run(transfers(network.urls, 62_000), tmp_path, metrics_port=0, metrics_linger_s=0, on_progress=on_progress).execute()
    table = pq.read_table(result.run_dir / "transactions.parquet")
    counts = assert_honest(result, table, network)
    assert not pid_alive(node0)
    reasons = [e["reason"] for e in result.summary["endpoint_events"] if e["endpoint"] == network.urls[0]]
    assert any(r.startswith("the block watcher follows") for r in reasons)
    assert counts["committed"] >= SCHEDULED * 0.7, counts

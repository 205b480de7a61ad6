"""Helpers for tests that run the engine against real Anvil nodes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray

from loadgen.chains.chain import connect
from loadgen.config import schema as config
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run, RunResult
from loadgen.engine.schema import TX_SCHEMA
from loadgen.report.audit import ChainAudit, audit, chain_hashes
from loadgen.report.head_clock import HeadClock


def fl_experiment(endpoints: list[str], run: dict | None = None, **workload) -> config.Experiment:
    raw = {
        "name": "test",
        "chain": {"endpoints": endpoints},
        "workload": {"kind": "fl-round", "model_length": 3_000, "redundancy": 2, "pools": 2, "pace_s": 0.3, **workload},
        "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 1.0} | (run or {}),
    }
    return config.from_dict(raw)


@contextlib.contextmanager
def local_ray(mnemonic: str | None = None) -> Iterator[None]:
    """The local Ray a test module's runs share: this machine's 2 CPUs, no dashboard, quiet, and
    its own (Ray's default joins a cluster another process started on the machine). With
    ``mnemonic``, LOADGEN_MNEMONIC is set as long (runs on explicit endpoints need one)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    try:
        with pytest.MonkeyPatch.context() as env:
            if mnemonic is not None:
                env.setenv("LOADGEN_MNEMONIC", mnemonic)
            yield
    finally:
        ray.shutdown()


def pid_of(handle: ray.actor.ActorHandle) -> int:
    """The process of a Ray actor."""
    return cast(int, ray.get(handle.__ray_call__.remote(lambda self: os.getpid())))


def run_killing(
    experiment: config.Experiment, out: Path, victim: str, at_progress: int = 3, events: list[str] | None = None
) -> tuple[RunResult, pa.Table]:
    """Runs the experiment and SIGKILLs the ``victim`` (sender actor 1 with "sender", the first
    block watcher with "watcher") at the ``at_progress``-th progress report of its last phase;
    the run's event lines go to ``events``."""
    holder: dict[str, Run] = {}
    seen: Counter[str] = Counter()
    last_phase = experiment.plugin.phases(None, 0)[-1].name

    def on_progress(p: Progress) -> None:
        seen[p.phase] += 1
        if p.phase == last_phase and seen[p.phase] == at_progress:
            fleet = holder["run"].fleet
            assert fleet is not None
            handle = fleet.actors[1] if victim == "sender" else next(iter(fleet.watchers.values()))
            os.kill(pid_of(handle), signal.SIGKILL)

    on_event = events.append if events is not None else (lambda _line: None)
    run = Run(experiment, out, metrics_port=0, metrics_linger_s=0, on_progress=on_progress, on_event=on_event)
    holder["run"] = run
    result = run.execute()
    return result, pq.read_table(result.run_dir / "transactions.parquet")


def execute(experiment: config.Experiment, out: Path) -> tuple[RunResult, pa.Table]:
    result = Run(experiment, out, metrics_port=0, metrics_linger_s=0).execute()
    return result, pq.read_table(result.run_dir / "transactions.parquet")


def statuses(table: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in table.column("status").to_pylist():
        counts[s] = counts.get(s, 0) + 1
    return counts


def synthetic_rows(run_id: str, n: int = 400, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    t0 = 1_800_000_000.0
    scheduled = t0 + np.arange(n) * 0.05
    status = rng.choice(["committed", "reverted", "rejected", "dropped", "unsent"], size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    latency = rng.gamma(2.0, 0.3, size=n)
    included = np.where(np.isin(status, ["committed", "reverted"]), scheduled + latency, np.nan)
    sent = np.where(status == "unsent", np.nan, scheduled + 0.001)
    columns = {
        "run_id": [run_id] * n, "trial": [0] * n, "epoch": [0] * n, "round_id": [1] * n, "worker": list(range(n)),
        "pool": [0] * n, "phase": ["reveal"] * n, "chunk_index": [0] * n, "attempt": [1] * n, "nonce": list(range(n)),
        "endpoint": ["http://a"] * n, "node": ["n"] * n, "tx_hash": [f"0x{i:064x}" for i in range(n)], "size_bytes": [32_235] * n,
        "t_scheduled": scheduled, "t_sent": sent, "t_acked": sent, "t_included": included, "block_number": [None] * n,
        "block_timestamp": included, "status": status, "error": [None] * n, "gas_used": [None] * n, "effective_gas_price": [None] * n,
        "latency_s": included - scheduled, "resends": [0] * n, "recovered": [False] * n, "late_s": [None] * n,
    }  # fmt: skip
    table = pa.table(columns, schema=TX_SCHEMA)
    for name in ("t_sent", "t_acked", "t_included", "block_timestamp", "latency_s"):
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(pc.is_nan(col), None, col))
    return table


def assert_one_row_per_attempt(table: pa.Table, planned: int) -> None:
    """Every scheduled transaction has exactly one row: one per planned item, plus one per retry."""
    keys = list(zip(*(table.column(c).to_pylist() for c in ("worker", "phase", "chunk_index", "attempt")), strict=True))
    assert len(set(keys)) == len(keys)
    retries = sum(1 for a in table.column("attempt").to_pylist() if a > 1)
    assert table.num_rows == planned + retries


def assert_the_chain_agrees(w3, table: pa.Table) -> None:
    """What committed per worker is a contiguous run of nonces, and the chain's nonce of each
    worker is exactly one past it: nothing recorded as failed landed, nothing landed unrecorded."""
    included = table.filter(pc.is_in(table.column("status"), value_set=pa.array(["committed", "reverted"]))).to_pylist()
    by_worker: dict[int, list[int]] = {}
    for row in included:
        by_worker.setdefault(row["worker"], []).append(row["nonce"])
    assert all(sorted(n) == list(range(min(n), min(n) + len(n))) for n in by_worker.values())
    first: dict[int, str] = {}
    for row in included:
        first.setdefault(row["worker"], row["tx_hash"])
    for worker, tx_hash in first.items():
        sender = w3.eth.get_transaction(tx_hash)["from"]
        assert w3.eth.get_transaction_count(sender) == max(by_worker[worker]) + 1, f"worker {worker}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def children_of_a_killed_parent(start_chain: str) -> tuple[list[int], bool]:
    """Runs ``start_chain`` (Python that binds ``chain``) in a child process, SIGKILLs that process
    and answers the chain's PIDs and whether all of them were gone within 15 s."""
    script = f"import json, time\n{start_chain}\nprint(json.dumps(chain.pids), flush=True)\ntime.sleep(600)\n"
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = json.loads(parent.stdout.readline())
    assert pids and all(pid_alive(p) for p in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids, not any(pid_alive(p) for p in pids)


def transfers_past_capacity(
    urls: list[str], out: Path, rate_tps: float, duration_s: float, watch: list[str] | None = None
) -> tuple[dict, ChainAudit]:
    """Value transfers offered to ``urls`` (20 workers, a 30 s commit timeout), the watchers
    reading from ``watch`` when given, then the chain read block by block from before the run
    to after it: the run's summary, and its rows beside the chain and beside when the node the
    watcher reads first had each block."""
    w3 = connect(urls[0])
    first = w3.eth.block_number + 1
    experiment = config.from_dict(
        {
            "name": "capacity-truth",
            "chain": {"endpoints": urls, "watch_endpoints": watch or []},
            "workload": {"kind": "transfer", "workers": 20, "rate_tps": rate_tps, "duration_s": duration_s},
            "run": {"commit_timeout_s": 30},
        }
    )
    with HeadClock((watch or urls)[:1]) as clock:  # the node the (first) watcher reads
        result, table = execute(experiment, out)
    chain, largest = chain_hashes(w3, first, w3.eth.block_number)
    return result.summary, audit(table, chain, largest, clock.seen)

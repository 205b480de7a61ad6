"""Helpers for tests that run the engine against real Anvil nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from actors.collector import TX_SCHEMA
from loadgen import config
from loadgen.run import Run, RunResult


def fl_experiment(endpoints: list[str], **workload) -> config.Experiment:
    raw = {
        "name": "test",
        "chain": {"endpoints": endpoints},
        "workload": {"kind": "fl-round", "model_length": 3_000, "redundancy": 2, "pools": 2, "pace_s": 0.3, **workload},
        "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 1.0},
    }
    return config.from_dict(raw)


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
        "block_timestamp": included, "status": status, "error": [None] * n, "gas_used": [None] * n,
        "latency_s": included - scheduled, "resends": [0] * n,
    }  # fmt: skip
    table = pa.table(columns, schema=TX_SCHEMA)
    for name in ("t_sent", "t_acked", "t_included", "block_timestamp", "latency_s"):
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(pc.is_nan(col), None, col))
    return table

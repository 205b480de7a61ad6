"""Helpers for tests that run the engine against real Anvil nodes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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
    result = Run(experiment, out, metrics_port=0).execute()
    return result, pq.read_table(result.run_dir / "transactions.parquet")


def statuses(table: pa.Table) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in table.column("status").to_pylist():
        counts[s] = counts.get(s, 0) + 1
    return counts

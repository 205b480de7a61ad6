"""A run's folder: Parquet written while the run goes, manifest and summary as JSON.

Rows are buffered and written as a row group every ``flush_s`` seconds, so a run killed
outright keeps what was flushed, and a run stopped with Ctrl-C closes its files properly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from actors.collector import BLOCK_SCHEMA, TX_SCHEMA


class _Writer:
    def __init__(self, path: Path, schema: pa.Schema, flush_s: float) -> None:
        self.path = path
        self.schema = schema
        self.flush_s = flush_s
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._last_flush = time.monotonic()
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def append(self, table: pa.Table) -> None:
        self._pending.append(table)
        self.rows += table.num_rows
        if time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending))
            self._pending = []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._writer.close()


class RunStore:
    def __init__(self, run_dir: Path, flush_s: float = 2.0) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.transactions = _Writer(run_dir / "transactions.parquet", TX_SCHEMA, flush_s)
        self.blocks = _Writer(run_dir / "blocks.parquet", BLOCK_SCHEMA, flush_s)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    def close(self) -> None:
        self.transactions.close()
        self.blocks.close()


def blocks_table(run_id: str, trial: int, rows: list) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(rows),
            "trial": [trial] * len(rows),
            "number": [b.number for b in rows],
            "timestamp": [b.timestamp_s for b in rows],
            "tx_count": [b.tx_count for b in rows],
            "gas_used": [b.gas_used for b in rows],
            "gas_limit": [b.gas_limit for b in rows],
            "t_observed": [b.t_observed for b in rows],
        },
        schema=BLOCK_SCHEMA,
    )

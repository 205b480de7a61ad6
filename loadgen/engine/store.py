"""A run's folder: Parquet written while the run goes, manifest and summary as JSON.

A Parquet file is readable only once its footer is written, so while a run goes its rows are
flushed every ``flush_s`` seconds as complete part files in ``<name>.parts/``; closing the store
merges them into ``<name>.parquet`` and removes the parts. A run killed outright (SIGKILL)
leaves its parts, which any Parquet reader opens as a dataset and ``finalize`` (called by
``loadgen report``) merges.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.common.jsonfile import write_json
from loadgen.engine.schema import BLOCK_SCHEMA, TX_SCHEMA, TXPOOL_SCHEMA

MAX_PENDING_ROWS = 50_000


class _Writer:
    def __init__(self, path: Path, schema: pa.Schema, flush_s: float) -> None:
        self.path = path
        self.parts = parts_dir(path)
        self.parts.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.flush_s = flush_s
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._last_flush = time.monotonic()
        self._part = 0
        self._pending_rows = 0
        self._closed = False

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self.rows += table.num_rows
        self._pending_rows += table.num_rows
        # by time, so a killed run loses little; by size, so the driver's memory stays flat
        if self._pending_rows >= MAX_PENDING_ROWS or time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._part += 1
            part = self.parts / f"part-{self._part:06d}.parquet"
            tmp = part.with_suffix(".tmp")
            pq.write_table(pa.concat_tables(self._pending), tmp, compression="zstd")
            tmp.replace(part)  # a part is either whole or absent
            self._pending = []
            self._pending_rows = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        merge_parts(self.path, self.schema)
        self._closed = True


def parts_dir(path: Path) -> Path:
    return path.with_suffix(".parts")


def merge_parts(path: Path, schema: pa.Schema) -> None:
    """Writes ``path`` from its part files (in order) and removes them."""
    parts = sorted(parts_dir(path).glob("part-*.parquet"))
    tmp = path.with_suffix(".merging")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for part in parts:
            writer.write_table(pq.read_table(part, schema=schema))
    tmp.replace(path)
    pa.default_memory_pool().release_unused()  # give the merge's buffers back to the system
    for part in parts:
        part.unlink()
    with contextlib.suppress(OSError):
        parts_dir(path).rmdir()


def finalize(run_dir: Path) -> bool:
    """Merges what a killed run left in part files. True when there was something to merge."""
    merged = False
    for name, schema in (("transactions", TX_SCHEMA), ("blocks", BLOCK_SCHEMA), ("txpool", TXPOOL_SCHEMA)):
        path = run_dir / f"{name}.parquet"
        if parts_dir(path).is_dir():
            merge_parts(path, schema)
            merged = True
    return merged


class RunStore:
    def __init__(self, run_dir: Path, flush_s: float = 2.0) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.transactions = _Writer(run_dir / "transactions.parquet", TX_SCHEMA, flush_s)
        self.blocks = _Writer(run_dir / "blocks.parquet", BLOCK_SCHEMA, flush_s)
        self.txpool = _Writer(run_dir / "txpool.parquet", TXPOOL_SCHEMA, flush_s)

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        return write_json(self.dir / name, data)

    def close(self) -> None:
        self.transactions.close()
        self.blocks.close()
        self.txpool.close()


def txpool_table(run_id: str, trial: int, t: float, pools: dict[str, tuple[int, int]]) -> pa.Table:
    n = len(pools)
    return pa.table(
        {
            "run_id": [run_id] * n,
            "trial": [trial] * n,
            "t": [t] * n,
            "endpoint": list(pools),
            "pending": [pending for pending, _ in pools.values()],
            "queued": [queued for _, queued in pools.values()],
        },
        schema=TXPOOL_SCHEMA,
    )


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

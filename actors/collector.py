"""One row per scheduled transaction, gathered inside an actor and shipped in Arrow batches.

A row is final when it has one of the five statuses; only final rows leave the actor, so the
driver never has to patch a row it already wrote.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from loadgen.engine.schema import TX_SCHEMA

if TYPE_CHECKING:
    from actors.blocks import Inclusion


@dataclass(slots=True, eq=False)
class TxRow:
    epoch: int
    round_id: int
    worker: int
    pool: int
    phase: str
    chunk_index: int
    attempt: int
    nonce: int
    endpoint: str
    tx_hash: bytes
    size_bytes: int
    t_scheduled: float
    t_sent: float = math.nan
    t_acked: float = math.nan  # the node's answer to the first send: never moved by a re-send
    t_included: float = math.nan
    block_number: int | None = None
    block_timestamp: float = math.nan
    status: str = ""
    error: str | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    resends: int = 0
    recovered: bool = False  # rebuilt from the chain after its sender actor was lost
    late_s: float = math.nan  # included this long after the phase's commit deadline (NaN: in time, or not included)
    finished: bool = False  # handed to the collector: a row leaves the actor once
    raw_body: bytes | None = field(default=None, repr=False)  # kept while in flight, to re-send
    t_checked: float = math.nan  # last sent or re-sent: the gap check waits gap_check_s from here (not stored)

    def include(self, inc: Inclusion) -> None:
        """Records the block that includes this row's transaction, as the watcher or a look-up saw it."""
        self.block_number = inc.block_number
        self.t_included = inc.t_observed
        self.block_timestamp = math.nan if inc.block_timestamp_s is None else inc.block_timestamp_s
        self.gas_used = inc.gas_used
        self.effective_gas_price = inc.effective_gas_price
        self.status = "ok" if inc.status == 1 else "failed"

    @property
    def latency_s(self) -> float:
        return self.t_included - self.t_scheduled


@dataclass
class Collector:
    run_id: str
    node: str
    trial: int = 0
    rows: list[TxRow] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def finish(self, row: TxRow, status: str, error: str | None = None) -> None:
        if row.finished:  # two paths may learn a row's fate (the watcher, a look-up): the first writes it
            return
        row.finished = True
        row.status = status
        if error is not None:
            row.error = error
        row.raw_body = None
        self.rows.append(row)
        self.counts[status] += 1

    @staticmethod
    def warm_up() -> None:
        """Builds and drops a one-row table. pyarrow loads its compute kernels on first use (a
        quarter second on an idle core, most of a second on a busy machine): left to the run's
        first collection, that stalls the sender's event loop a second into the sending, and
        every slot of the stall leaves late."""
        collector = Collector("", "")
        collector.finish(TxRow(0, 0, 0, 0, "", 0, 1, 0, "", b"", 0, 0.0), "committed")
        collector.take()

    def take(self) -> pa.Table | None:
        rows, self.rows = self.rows, []
        if not rows:
            return None
        n = len(rows)
        columns = {
            "run_id": [self.run_id] * n,
            "trial": [self.trial] * n,
            "epoch": [r.epoch for r in rows],
            "round_id": [r.round_id for r in rows],
            "worker": [r.worker for r in rows],
            "pool": [r.pool for r in rows],
            "phase": [r.phase for r in rows],
            "chunk_index": [r.chunk_index for r in rows],
            "attempt": [r.attempt for r in rows],
            "nonce": [r.nonce for r in rows],
            "endpoint": [r.endpoint for r in rows],
            "node": [self.node] * n,
            "tx_hash": ["0x" + r.tx_hash.hex() if r.tx_hash else None for r in rows],
            "size_bytes": [r.size_bytes for r in rows],
            "t_scheduled": [r.t_scheduled for r in rows],
            "t_sent": [r.t_sent for r in rows],
            "t_acked": [r.t_acked for r in rows],
            "t_included": [r.t_included for r in rows],
            "block_number": [r.block_number for r in rows],
            "block_timestamp": [r.block_timestamp for r in rows],
            "status": [r.status for r in rows],
            "error": [r.error for r in rows],
            "gas_used": [r.gas_used for r in rows],
            "effective_gas_price": [r.effective_gas_price for r in rows],
            "latency_s": [r.latency_s for r in rows],
            "resends": [r.resends for r in rows],
            "recovered": [r.recovered for r in rows],
            "late_s": [r.late_s for r in rows],
        }
        # NaN stands for "did not happen" in the float columns; store it as null
        table = pa.table(columns, schema=TX_SCHEMA)
        for name in ("t_sent", "t_acked", "t_included", "block_timestamp", "latency_s", "late_s"):
            col = table.column(name)
            table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(pc.is_nan(col), None, col))
        return table

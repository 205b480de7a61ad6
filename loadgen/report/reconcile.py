"""What landed after a run: its `dropped` transactions (not in a block when their phase settled,
or still in flight when the run was stopped) looked up again on the run's endpoints, later.

A pool may hold a transaction past the run and include it minutes on. That is kept apart from
the run's own verdict (which stands: it was not committed within the timeout) and written to
``reconciled.parquet`` beside the rows, one row per hash found in a block.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.chains.node import Node, NotJsonRpc

BATCH = 200
RECONCILED_SCHEMA = pa.schema(
    [("tx_hash", pa.string()), ("block_number", pa.int64()), ("status", pa.string()), ("t_checked", pa.float64())]
)


@dataclass(frozen=True)
class Landed:
    dropped: int  # the run's dropped rows with a hash
    committed: int  # of them, found in a block with a success receipt
    reverted: int
    endpoint: str | None  # where they were looked up; None: no endpoint of the run answered

    def line(self) -> str:
        if self.endpoint is None:
            return f"after the run: {self.dropped:,} dropped not looked up again (no endpoint of the run answers)"
        landed = self.committed + self.reverted
        return (
            f"after the run: {landed:,} of {self.dropped:,} dropped landed later ({self.committed:,} committed, "
            f"{self.reverted:,} reverted; looked up on {self.endpoint}): not in the run's verdict"
        )


def _receipts(url: str, hashes: list[str], timeout_s: float) -> list[Any]:
    with Node(url, timeout_s) as node:
        return [
            r for i in range(0, len(hashes), BATCH) for r in node.batch("eth_getTransactionReceipt", [[h] for h in hashes[i : i + BATCH]])
        ]


def reconcile(run_dir: Path, table: pa.Table, endpoints: list[str], timeout_s: float = 5.0) -> Landed | None:
    """Looks the run's dropped hashes up on the first of ``endpoints`` that answers; None when
    the run dropped nothing."""
    dropped = table.filter(pc.and_(pc.equal(table.column("status"), "dropped"), pc.is_valid(table.column("tx_hash"))))
    hashes = dropped.column("tx_hash").to_pylist()
    if not hashes:
        return None
    for url in endpoints:
        try:
            receipts = _receipts(url, hashes, timeout_s)
        except (OSError, http.client.HTTPException, NotJsonRpc):
            continue
        now = time.time()
        found = [(h, r) for h, r in zip(hashes, receipts, strict=True) if isinstance(r, dict) and r.get("blockNumber")]
        rows = {
            "tx_hash": [h for h, _ in found],
            "block_number": [int(r["blockNumber"], 16) for _, r in found],
            "status": ["committed" if int(r.get("status", "0x1"), 16) == 1 else "reverted" for _, r in found],
            "t_checked": [now] * len(found),
        }
        pq.write_table(pa.table(rows, schema=RECONCILED_SCHEMA), run_dir / "reconciled.parquet")
        committed = rows["status"].count("committed")
        return Landed(len(hashes), committed, len(found) - committed, url)
    return Landed(len(hashes), 0, 0, None)

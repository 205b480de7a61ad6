"""A run's record beside the chain: every block read after the run, each of the run's hashes
found where the chain has it, and every way the two can disagree counted.

This is how loadgen checks itself (the capacity-truth tests and benchmark): the record must
equal the chain whatever happened in between. It reads blocks with hashes only and asks for no
receipt, so it costs the nodes what a block explorer would.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import cast

import numpy as np
import pyarrow as pa
from web3 import Web3
from web3.types import BlockData

from loadgen.chains.blocktime import timestamp_seconds

BATCH = 100  # blocks a request


@dataclass(frozen=True)
class ChainAudit:
    scheduled: int  # the run's rows (one per scheduled transaction)
    on_chain: int  # of the run's hashes, how many the chain holds
    committed: int  # rows saying committed or reverted
    missed: int  # on the chain, but the row says dropped, unsent or rejected (or there is no included row)
    phantom: int  # a committed or reverted row whose hash the chain lacks, or has in another block
    twice: int  # hashes with more than one row that says included or dropped
    late: int  # rows marked late
    chain_p50_s: float | None  # block timestamp − scheduled, over the run's transactions on chain
    chain_p99_s: float | None
    record_p50_s: float | None  # the record's latency (t_included − scheduled), committed rows
    record_p99_s: float | None
    largest_block: int  # transactions
    # when the watched node first had the block − scheduled (head_clock.HeadClock beside the
    # run): not a lower bound as the timestamp is, but what a watcher keeping up would see
    announced_p50_s: float | None = None

    @property
    def agrees(self) -> bool:
        return self.missed == 0 and self.phantom == 0 and self.twice == 0


def chain_hashes(w3: Web3, first: int, last: int) -> tuple[dict[str, tuple[int, float]], int]:
    """Every transaction hash in blocks first..last with its block's number and timestamp
    (seconds), and the largest block's transaction count."""
    found: dict[str, tuple[int, float]] = {}
    largest = 0
    for start in range(first, last + 1, BATCH):
        numbers = range(start, min(start + BATCH, last + 1))
        with w3.batch_requests() as batch:
            for n in numbers:
                batch.add(w3.eth.get_block(n, full_transactions=False))
            blocks = batch.execute()
        for block in cast(list[BlockData], blocks):
            ts = timestamp_seconds(int(block["timestamp"]))
            largest = max(largest, len(block["transactions"]))
            for h in block["transactions"]:
                found["0x" + bytes(cast(bytes, h)).hex()] = (int(block["number"]), ts)
    return found, largest


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None]:
    if not values.size:
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def audit(
    table: pa.Table, chain: dict[str, tuple[int, float]], largest_block: int = 0, announced: dict[int, float] | None = None
) -> ChainAudit:
    """``table``: the run's rows; ``chain``: hash → (block number, timestamp) of the blocks read;
    ``announced``: block number → when the watched node first had it."""
    if "late_s" not in table.schema.names:  # written before the column existed
        table = table.append_column("late_s", pa.nulls(table.num_rows, pa.float64()))
    rows = table.select(["tx_hash", "status", "t_scheduled", "latency_s", "late_s", "block_number"]).to_pylist()
    included_rows = [r for r in rows if r["status"] in ("committed", "reverted")]
    included_hashes = {r["tx_hash"] for r in included_rows}
    ours = {r["tx_hash"] for r in rows if r["tx_hash"]}
    on_chain = ours & chain.keys()
    decided = Counter(r["tx_hash"] for r in rows if r["tx_hash"] and r["status"] in ("committed", "reverted", "dropped"))
    scheduled_of: dict[str, float] = {}
    for r in rows:
        if r["tx_hash"] in on_chain:
            scheduled_of[r["tx_hash"]] = min(scheduled_of.get(r["tx_hash"], r["t_scheduled"]), r["t_scheduled"])
    chain_latency = np.array([chain[h][1] - scheduled_of[h] for h in on_chain])
    seen = announced or {}
    announced_latency = np.array([seen[chain[h][0]] - scheduled_of[h] for h in on_chain if chain[h][0] in seen])
    elsewhere = {r["tx_hash"] for r in included_rows if r["tx_hash"] in chain and chain[r["tx_hash"]][0] != r["block_number"]}
    record_latency = np.array([r["latency_s"] for r in rows if r["status"] == "committed" and r["latency_s"] is not None])
    return ChainAudit(
        scheduled=len(rows),
        on_chain=len(on_chain),
        committed=len(included_rows),
        missed=len(on_chain - included_hashes),
        phantom=len(included_hashes - chain.keys()) + len(elsewhere),
        twice=sum(1 for n in decided.values() if n > 1),
        late=sum(1 for r in rows if r["late_s"] is not None),
        chain_p50_s=_percentiles(chain_latency)[0],
        chain_p99_s=_percentiles(chain_latency)[1],
        record_p50_s=_percentiles(record_latency)[0],
        record_p99_s=_percentiles(record_latency)[1],
        largest_block=largest_block,
        announced_p50_s=_percentiles(announced_latency)[0],
    )

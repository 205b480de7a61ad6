"""Watches the chain once per host: every new block's header and receipts, fetched once.

Sender actors on the same host read the inclusions from here, so a block costs one
``eth_getBlockByNumber`` and one ``eth_getBlockReceipts`` (or one batch of
``eth_getTransactionReceipt`` on nodes without it) however many workers there are. The time a
block is first seen is read on this host's clock, the same clock the senders schedule with.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import ray

from actors.rpc import RpcClient, RpcError

RAFT_NANOSECONDS = 10**12  # a seconds timestamp stays below this until the year 33658


def timestamp_seconds(raw: int) -> float:
    """GoQuorum Raft stamps blocks in nanoseconds, IBFT/QBFT and Clique in seconds."""
    return raw / 1e9 if raw > RAFT_NANOSECONDS else float(raw)


@dataclass(frozen=True, slots=True)
class Inclusion:
    tx_hash: bytes
    block_number: int
    t_observed: float
    status: int
    gas_used: int
    block_timestamp_s: float
    effective_gas_price: int | None  # what the sender paid per gas (None: the node does not say)


@dataclass(frozen=True, slots=True)
class BlockRow:
    number: int
    timestamp_s: float
    tx_count: int
    gas_used: int
    gas_limit: int
    t_observed: float


class BlockWatcher:
    def __init__(self, endpoint: str, poll_interval_s: float = 0.05, retention_s: float = 900.0) -> None:
        self.rpc = RpcClient(endpoint)
        self.poll_interval_s = poll_interval_s
        self.retention_s = retention_s
        self.inclusions: list[Inclusion] = []
        self.blocks: list[BlockRow] = []
        self._inclusion_base = 0  # sequence number of inclusions[0]; older ones were trimmed
        self._next_block: int | None = None
        self._block_receipts = True
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.errors = 0
        self.last_error = ""

    async def start(self) -> int:
        head = int(await self.rpc.call("eth_blockNumber"), 16)
        self._next_block = head + 1
        self._task = asyncio.create_task(self._loop())
        return head

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.rpc.close()

    async def _loop(self) -> None:
        assert self._next_block is not None, "start() sets it before the loop runs"
        while True:
            try:
                head = int(await self.rpc.call("eth_blockNumber"), 16)
                while self._next_block <= head:
                    await self._fetch(self._next_block, seen=time.time())
                    self._next_block += 1
            except RpcError as e:
                self.errors += 1
                self.last_error = str(e)
            await asyncio.sleep(self.poll_interval_s)

    async def _fetch(self, number: int, seen: float) -> None:
        block = await self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:  # the node answered the number before it could serve the block
            raise RpcError("rpc", f"block {number} not served yet")
        hashes = block["transactions"]
        receipts = await self._receipts(number, hashes) if hashes else []
        ts = timestamp_seconds(int(block["timestamp"], 16))
        self.blocks.append(BlockRow(number, ts, len(hashes), int(block["gasUsed"], 16), int(block["gasLimit"], 16), seen))
        for r in receipts:
            self.inclusions.append(
                Inclusion(
                    bytes.fromhex(r["transactionHash"][2:]),
                    number,
                    seen,
                    int(r["status"], 16),
                    int(r["gasUsed"], 16),
                    ts,
                    int(r["effectiveGasPrice"], 16) if r.get("effectiveGasPrice") else None,
                )
            )
        self._trim(seen)
        self._changed.set()

    async def _receipts(self, number: int, hashes: list[str]) -> list[dict]:
        if self._block_receipts:
            try:
                receipts = await self.rpc.call("eth_getBlockReceipts", [hex(number)])
                if receipts is not None:
                    return receipts
            except RpcError as e:
                if e.kind != "rpc":
                    raise
            self._block_receipts = False  # older geth-derived nodes (GoQuorum) do not have it
        receipts = []
        for i in range(0, len(hashes), 200):
            answers = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes[i : i + 200]])
            for answer in answers:
                if isinstance(answer, RpcError) or answer is None:
                    raise RpcError("rpc", f"receipt missing in block {number}")
                receipts.append(answer)
        return receipts

    def _trim(self, now: float) -> None:
        cut = 0
        while cut < len(self.inclusions) and self.inclusions[cut].t_observed < now - self.retention_s:
            cut += 1
        if cut:
            del self.inclusions[:cut]
            self._inclusion_base += cut

    async def inclusions_since(self, cursor: int, wait_s: float) -> tuple[int, list[Inclusion]]:
        """Inclusions with sequence number ≥ cursor; waits up to wait_s for new ones."""
        end = self._inclusion_base + len(self.inclusions)
        if cursor >= end and wait_s > 0:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)
            end = self._inclusion_base + len(self.inclusions)
        start = max(cursor, self._inclusion_base) - self._inclusion_base
        return end, self.inclusions[start:]

    def take_blocks(self) -> list[BlockRow]:
        """The blocks seen since the last call; the driver is their only reader."""
        rows, self.blocks = self.blocks, []
        return rows


@ray.remote(num_cpus=0, max_concurrency=1000)  # type: ignore[call-overload]  # ray's overloads omit actor options
class WatcherActor:
    """The host's BlockWatcher as a Ray actor, pinned to its node by the driver."""

    def __init__(self, endpoint: str, poll_interval_s: float) -> None:
        self.watcher = BlockWatcher(endpoint, poll_interval_s)

    async def start(self) -> int:
        return await self.watcher.start()

    async def inclusions_since(self, cursor: int, wait_s: float = 0.5) -> tuple[int, list[Inclusion]]:
        return await self.watcher.inclusions_since(cursor, wait_s)

    async def take_blocks(self) -> list[BlockRow]:
        return self.watcher.take_blocks()

    async def stop(self) -> None:
        await self.watcher.stop()

"""Watches the chain once per host: every new block's header and receipts, fetched once.

Sender actors on the same host read the inclusions from here, so a block costs one
``eth_getBlockByNumber`` and one ``eth_getBlockReceipts`` (or one batch of
``eth_getTransactionReceipt`` on nodes without it) however many workers there are. The time a
block is first seen is read on this host's clock, the same clock the senders schedule with.

It hears of a new block by a ``newHeads`` subscription over WebSocket, on the endpoint's own
address (Anvil, and geth and GoQuorum with ``--ws.port`` equal to ``--http.port``, as the
embedded networks run): a block is seen when the node announces it, a few milliseconds after it
is made. Where the endpoint offers no WebSocket it polls the head every 50 ms, and a block is
seen up to one interval late. With a subscription it still polls once a second, so a lost
notification costs a second at most.

The watcher follows the first of its endpoints; when that one stops answering (``failover_after``
unhealthy answers in a row) it follows the next, from the block after the last one it processed,
so no block and no inclusion is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp
import orjson
import ray

from actors.endpoints import EndpointEvent, in_turn
from actors.rpc import RpcClient, RpcError

# Inclusions kept for senders that read late: they read within a second, and one that falls
# further behind finds a receipt by hash in its gap check; at 500 tx/s this is 60,000 kept.
RETENTION_S = 120.0
FAILOVER_AFTER_S = 1.0  # at least this long without a good round before following another endpoint
RAFT_NANOSECONDS = 10**12  # a seconds timestamp stays below this until the year 33658
HEADS_POLL_S = 1.0  # with a subscription: the poll that catches what a lost notification would miss
SUBSCRIBE_TIMEOUT_S = 5.0
RESUBSCRIBE_S = 10.0
HEARTBEAT_S = 5.0


def ws_url(url: str) -> str:
    """The WebSocket address on the same host and port: http → ws, https → wss."""
    return "ws" + url[4:] if url.startswith("http") else url


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
    block_timestamp_s: float | None  # None: read from a receipt alone
    effective_gas_price: int | None  # what the sender paid per gas (None: the node does not say)

    @classmethod
    def of(cls, receipt: object, tx_hash: str, t_observed: float, block_timestamp_s: float | None) -> Inclusion:
        """The inclusion a receipt of ``tx_hash`` says; a receipt of another transaction, or one
        without a number, status or gas where they belong, is an answer not to be believed."""
        try:
            assert isinstance(receipt, dict)
            assert str(receipt["transactionHash"]).lower() == tx_hash.lower()
            price = receipt.get("effectiveGasPrice")
            return cls(
                bytes.fromhex(tx_hash[2:]), int(receipt["blockNumber"], 16), t_observed, int(receipt["status"], 16),
                int(receipt["gasUsed"], 16), block_timestamp_s, int(price, 16) if price else None,
            )  # fmt: skip
        except (AssertionError, KeyError, TypeError, ValueError):
            raise RpcError("rpc", f"not a receipt of {tx_hash}: {receipt!r:.200}", unhealthy=True) from None


@dataclass(frozen=True, slots=True)
class BlockRow:
    number: int
    timestamp_s: float
    tx_count: int
    gas_used: int
    gas_limit: int
    t_observed: float


class BlockWatcher:
    def __init__(
        self, endpoints: list[str], poll_interval_s: float = 0.05, retention_s: float = RETENTION_S, failover_after: int = 3
    ) -> None:
        self.endpoints = endpoints
        self.rpc = RpcClient(endpoints[0])
        self.failover_after = failover_after
        self.events: list[EndpointEvent] = []
        self.poll_interval_s = poll_interval_s
        self.retention_s = retention_s
        self.inclusions: list[Inclusion] = []
        self.blocks: list[BlockRow] = []
        self._inclusion_base = 0  # sequence number of inclusions[0]; older ones were trimmed
        self._next_block: int | None = None
        self._block_receipts = True
        self._block_receipts_work = False  # eth_getBlockReceipts has answered at least once
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.errors = 0
        self.last_error = ""
        self._failing = 0  # rounds in a row that failed
        self._progress_at = time.monotonic()
        self.subscribed = False  # newHeads notifications arrive (else: polling)
        self._heads: asyncio.Task | None = None
        self._head = asyncio.Event()
        self._heard: dict[int, float] = {}  # block number → when the node announced it

    async def start(self, from_block: int | None = None) -> int:
        """Follows the chain from ``from_block`` (a lost watcher's successor), else from the next
        block; through the first of its endpoints that answers."""
        for _ in self.endpoints[1:]:
            try:
                await self.rpc.call("eth_blockNumber")
                break
            except RpcError as e:
                self.last_error = str(e)
                await self._follow_next()
        head = int(await self.rpc.call("eth_blockNumber"), 16)
        self._next_block = head + 1 if from_block is None else from_block
        self._listen(self.rpc.url)
        self._task = asyncio.create_task(self._loop())
        return head

    def _listen(self, url: str) -> None:
        if self._heads is not None:
            self._heads.cancel()
        self._heads = asyncio.create_task(self._subscribe(url))

    async def _subscribe(self, url: str) -> None:
        """Hears the node announce each new block, connecting again after a drop (the watcher
        polls meanwhile); an endpoint with no WebSocket is asked again every 10 s."""
        while True:
            await self._subscription(url)
            await asyncio.sleep(RESUBSCRIBE_S)

    async def _subscription(self, url: str) -> None:
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        try:
            async with (
                aiohttp.ClientSession() as session,
                # the heartbeat finds a connection that went silent without closing
                session.ws_connect(ws_url(url), timeout=aiohttp.ClientWSTimeout(ws_close=2), heartbeat=HEARTBEAT_S) as ws,
            ):
                await ws.send_bytes(orjson.dumps(request))
                answer = orjson.loads((await ws.receive(timeout=SUBSCRIBE_TIMEOUT_S)).data)
                if not isinstance(answer, dict) or not answer.get("result"):
                    return
                self.subscribed = True
                async for message in ws:
                    heard = time.time()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    number = int(orjson.loads(message.data)["params"]["result"]["number"], 16)
                    self._heard[number] = heard
                    self._head.set()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            pass  # no WebSocket here, or not a node's: polling does
        finally:
            if self._heads is asyncio.current_task():  # not a cancelled one's: its successor may be up
                self.subscribed = False

    async def stop(self) -> None:
        for task in (self._task, self._heads):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.rpc.close()

    async def _loop(self) -> None:
        assert self._next_block is not None, "start() sets it before the loop runs"
        while True:
            try:
                head = int(await self.rpc.call("eth_blockNumber"), 16)
                while self._next_block <= head:
                    # (get, not pop: a fetch that fails is tried again, and the block was still announced then)
                    await self._fetch(self._next_block, seen=self._heard.get(self._next_block, time.time()))
                    self._next_block += 1
                for number in [n for n in self._heard if n < self._next_block]:
                    del self._heard[number]
            except RpcError as e:
                self.errors += 1
                self.last_error = str(e)
                # judged on whole rounds, not single calls: a node that answers the head but not
                # its blocks or receipts makes no progress either (a block not served yet, once,
                # is no reason to leave: the rounds must keep failing for a second)
                self._failing += 1
                stuck_s = time.monotonic() - self._progress_at
                if self._failing >= self.failover_after and stuck_s >= FAILOVER_AFTER_S and len(self.endpoints) > 1:
                    await self._follow_next()
            else:
                self._failing, self._progress_at = 0, time.monotonic()
            await self._until_next_round()

    async def _until_next_round(self) -> None:
        """Until the node announces a block, or the next poll is due (a subscription that comes
        up while the watcher waits ends the wait with its first block). After a failed round,
        or with no subscription, the poll is due at the poll interval."""
        patient = self.subscribed and not self._failing
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._head.wait(), HEADS_POLL_S if patient else self.poll_interval_s)
        self._head.clear()

    async def _follow_next(self) -> None:
        lost = self.rpc
        await lost.close()
        url = in_turn(self.endpoints, lost.url)[1]
        self.rpc = RpcClient(url)
        self._listen(url)
        self._failing, self._progress_at = 0, time.monotonic()
        start = "its next block" if self._next_block is None else f"block {self._next_block}"
        why = f"the block watcher follows {url} from {start}: {self.last_error}"
        self.events.append(EndpointEvent(time.time(), lost.url, False, why))

    async def _fetch(self, number: int, seen: float) -> None:
        block = await self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:  # the node answered the number before it could serve the block
            raise RpcError("rpc", f"block {number} not served yet")
        try:
            hashes = [str(h) for h in block["transactions"]]
            ts = timestamp_seconds(int(block["timestamp"], 16))
            row = BlockRow(number, ts, len(hashes), int(block["gasUsed"], 16), int(block["gasLimit"], 16), seen)
        except (KeyError, TypeError, ValueError):
            raise RpcError("rpc", f"not a block: {block!r:.200}", unhealthy=True) from None
        receipts = await self._receipts(number, hashes) if hashes else []
        inclusions = [Inclusion.of(r, h, seen, ts) for r, h in zip(receipts, hashes, strict=True)]
        self.blocks.append(row)
        self.inclusions += inclusions
        self._trim(seen)
        self._changed.set()

    async def _receipts(self, number: int, hashes: list[str]) -> list[object]:
        """The block's receipts in the order of its transactions."""
        if self._block_receipts:
            try:
                answer = await self.rpc.call("eth_getBlockReceipts", [hex(number)])
                listed = answer if isinstance(answer, list) else []
                by_hash = {str(r.get("transactionHash")).lower(): r for r in listed if isinstance(r, dict)}
                if all(h.lower() in by_hash for h in hashes):
                    self._block_receipts_work = True
                    return [by_hash[h.lower()] for h in hashes]
            except RpcError as e:
                if e.kind != "rpc" or e.unhealthy:
                    raise
            # older geth-derived nodes (GoQuorum) do not have it; one that has, and answered
            # this block amiss, is asked again, transaction by transaction
            self._block_receipts = self._block_receipts_work
        receipts: list[object] = []
        for i in range(0, len(hashes), 200):
            answers = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes[i : i + 200]])
            for h, answer in zip(hashes[i : i + 200], answers, strict=True):
                if isinstance(answer, RpcError) or answer is None:
                    # a batch answered in part (or with the wrong ids): ask for this one alone
                    answer = await self.rpc.call("eth_getTransactionReceipt", [h])
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

    def take_events(self) -> list[EndpointEvent]:
        events, self.events = self.events, []
        return events


@ray.remote(num_cpus=0, max_concurrency=1000)  # type: ignore[call-overload]  # ray's overloads omit actor options
class WatcherActor:
    """The host's BlockWatcher as a Ray actor, pinned to its node by the driver."""

    def __init__(self, endpoints: list[str], poll_interval_s: float, failover_after: int) -> None:
        self.watcher = BlockWatcher(endpoints, poll_interval_s, failover_after=failover_after)

    async def start(self, from_block: int | None = None) -> int:
        return await self.watcher.start(from_block)

    async def inclusions_since(self, cursor: int, wait_s: float = 0.5) -> tuple[int, list[Inclusion]]:
        return await self.watcher.inclusions_since(cursor, wait_s)

    async def take_blocks(self) -> list[BlockRow]:
        return self.watcher.take_blocks()

    async def take_events(self) -> list[EndpointEvent]:
        return self.watcher.take_events()

    async def stop(self) -> None:
        await self.watcher.stop()

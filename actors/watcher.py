"""Watches the chain once per host: every new block's header and receipts, fetched once.

Sender actors on the same host read the inclusions from here, so a block is read once however
many workers there are, in the cheapest way the node offers, chosen once per endpoint:

- ``eth_getBlockReceipts``, with ``eth_getBlockByNumber`` (Anvil, geth from 1.13);
- else a GraphQL query of the block's transactions with their status (geth and GoQuorum with
  ``--graphql``, as the embedded networks run): the node reads the block's receipts once;
- else ``eth_getTransactionReceipt`` for each transaction, in batches. On geth 1.10 and GoQuorum
  each such call decodes the whole block to find its transaction: a block of n transactions costs
  the node n² work, which at thousands of transactions a block is seconds of CPU per block, on
  the very nodes whose capacity is measured.

The time a block is first seen is read on this host's clock, the same clock the senders
schedule with.

It hears of a new block by a ``newHeads`` subscription over WebSocket, on the endpoint's own
address (Anvil, and geth and GoQuorum with ``--ws.port`` equal to ``--http.port``, as the
embedded networks run): a block is seen when the node announces it, a few milliseconds after it
is made. Where the endpoint offers no WebSocket it polls the head every 50 ms, and a block is
seen up to one interval late. With a subscription it still polls once a second, so a lost
notification costs a second at most.

While it is behind (blocks of thousands of transactions, on nodes without
``eth_getBlockReceipts``: one receipt call per transaction) it reads several blocks at once and
each block's receipts in concurrent batches, and says how far behind it is (``lag``): the
senders decide nothing is missing until it has read the chain up to where they ask
(``read_to``).

The watcher follows the first of its endpoints; when that one stops answering (``failover_after``
unhealthy answers in a row) it follows the next, from the block after the last one it processed,
so no block and no inclusion is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from actors.blocks import BlockReader, BlockRow, Inclusion
from actors.endpoints import EndpointEvent, in_turn
from actors.rpc import RpcClient, RpcError
from actors.stats import WatcherLag

# Inclusions kept for senders that read late: they read within a second, and one that falls
# further behind finds a receipt by hash in its gap check; at 500 tx/s this is 60,000 kept.
RETENTION_S = 120.0
FAILOVER_AFTER_S = 1.0  # at least this long without a good round before following another endpoint
HEADS_POLL_S = 1.0  # with a subscription: the poll that catches what a lost notification would miss
SUBSCRIBE_TIMEOUT_S = 5.0
RESUBSCRIBE_S = 10.0
HEARTBEAT_S = 5.0
BLOCKS_AT_ONCE = 4  # blocks read at once while behind
KEPT_HASHES = 256  # block hashes kept to see a reorganization under the watcher


def ws_url(url: str) -> str:
    """The WebSocket address on the same host and port: http → ws, https → wss."""
    return "ws" + url[4:] if url.startswith("http") else url


@dataclass(frozen=True, slots=True)
class Followed:
    """What a sender reads from its watcher: the inclusions from its cursor on, the cursor to ask
    from next, the last block the watcher has read whole (every inclusion up to it is in), and
    when each block after it was first known to exist (what a look-up that finds a transaction
    there dates its inclusion by)."""

    cursor: int
    inclusions: list[Inclusion]
    read_to: int
    heard: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reorg:
    """Blocks the watcher had read (and reported inclusions from) that the chain replaced."""

    number: int  # the first block read that the chain no longer has
    depth: int  # how many such blocks (at least; the search stops at KEPT_HASHES)
    t: float


@dataclass(frozen=True, slots=True)
class WatcherReport:
    """What the driver takes from a watcher at each collection."""

    blocks: list[BlockRow]
    events: list[EndpointEvent]
    lag: WatcherLag
    reorgs: list[Reorg]
    # the endpoint read from and how its receipts are read ("block", "graphql", "hash"), once known
    receipts: tuple[str, str] | None = None


class BlockWatcher:
    def __init__(
        self,
        endpoints: list[str],
        poll_interval_s: float = 0.05,
        retention_s: float = RETENTION_S,
        failover_after: int = 3,
        confirmations: int = 0,
    ) -> None:
        self.endpoints = endpoints
        # a block is read once this many blocks are on top of it: where signers can fork
        # (clique), the inclusions it reports are then ones the chain keeps
        self.confirmations = confirmations
        self.hashes: dict[int, str] = {}  # block number → hash, of the blocks read last
        self.reorgs: list[Reorg] = []
        self.rpc = RpcClient(endpoints[0])
        self.failover_after = failover_after
        self.events: list[EndpointEvent] = []
        self.poll_interval_s = poll_interval_s
        self.retention_s = retention_s
        self.inclusions: list[Inclusion] = []
        self.blocks: list[BlockRow] = []
        self._inclusion_base = 0  # sequence number of inclusions[0]; older ones were trimmed
        self._next_block: int | None = None
        self.reader = BlockReader(self.rpc)  # how this endpoint's blocks and receipts are read
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._polling: asyncio.Task | None = None
        self.errors = 0
        self.last_error = ""
        self._failing = 0  # rounds in a row that failed
        self._progress_at = time.monotonic()
        self.subscribed = False  # newHeads notifications arrive (else: polling)
        self._heads: asyncio.Task | None = None
        self._head = asyncio.Event()
        self._heard: dict[int, float] = {}  # block number → when it was first known to exist (announced, or polled)
        self.head = -1  # the newest block known to exist

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
        self.head = head
        self._listen(self.rpc.url)
        self._task = asyncio.create_task(self._loop())
        self._polling = asyncio.create_task(self._poll_heads())
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
                    self._heard.setdefault(number, heard)
                    self.head = max(self.head, number)
                    self._head.set()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            pass  # no WebSocket here, or not a node's: polling does
        finally:
            if self._heads is asyncio.current_task():  # not a cancelled one's: its successor may be up
                self.subscribed = False

    async def stop(self) -> None:
        for task in (self._task, self._heads, self._polling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.rpc.close()
        await self.reader.close()

    async def _loop(self) -> None:
        assert self._next_block is not None, "start() sets it before the loop runs"
        while True:
            try:
                self._heads_at(int(await self.rpc.call("eth_blockNumber"), 16), time.time())
                while self._next_block <= self.head - self.confirmations:  # the head moves on while it reads
                    await self._read_some(self.head - self.confirmations)
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

    def _heads_at(self, head: int, now: float) -> None:
        """The head polled at ``now``: blocks not heard of before are known from now."""
        assert self._next_block is not None, "start() sets it before polling"
        for number in range(max(self._next_block, self.head + 1), head + 1):
            self._heard.setdefault(number, now)
        self.head = max(self.head, head)

    async def _poll_heads(self) -> None:
        """Without a subscription, the head is polled apart from the reading: a block is known
        when it comes (a poll interval late at most), even while the watcher reads big blocks
        before it. Errors are the reading loop's to judge."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if not self.subscribed:
                with contextlib.suppress(RpcError, TypeError, ValueError):
                    known = self.head
                    self._heads_at(int(await self.rpc.call("eth_blockNumber"), 16), time.time())
                    if self.head > known:
                        self._head.set()

    async def _read_some(self, head: int) -> None:
        """Reads the next blocks up to ``head``, several at once, and hands them over in order:
        those before a block that failed are kept, the rest are read again next round."""
        assert self._next_block is not None, "start() sets it before the loop runs"
        if self.reader.receipts_via is None:  # once, before the reads that use it start together
            await self.reader.choose()
        numbers = range(self._next_block, min(head, self._next_block + BLOCKS_AT_ONCE - 1) + 1)
        reads = await asyncio.gather(*(self.reader.read(n, self._heard.get(n, time.time())) for n in numbers), return_exceptions=True)
        for read in reads:
            if isinstance(read, BaseException):
                raise read
            row, inclusions = read.row, read.inclusions
            if self.hashes.get(row.number - 1, read.parent) != read.parent:
                await self._reorganized(row.number - 1)
            self.hashes[row.number] = read.hash
            self.hashes.pop(row.number - KEPT_HASHES, None)
            self.blocks.append(row)
            self.inclusions += inclusions
            self._next_block += 1
            self._progress_at = time.monotonic()
            self._trim(row.t_observed)
            self._changed.set()

    async def _reorganized(self, number: int) -> None:
        """Block ``number`` as read is no longer the chain's: how far back it forked."""
        first = number
        while first - 1 in self.hashes:
            block = await self.rpc.call("eth_getBlockByNumber", [hex(first - 1), False])
            if isinstance(block, dict) and block.get("hash") == self.hashes[first - 1]:
                break
            first -= 1
        self.reorgs.append(Reorg(first, number - first + 1, time.time()))

    @property
    def read_to(self) -> int:
        """The last block read whole."""
        return -1 if self._next_block is None else self._next_block - 1

    def lag(self) -> WatcherLag:
        behind = max(self.head - self.confirmations - self.read_to, 0)
        known = self._heard.get(self.read_to + 1) if behind else None
        return WatcherLag(behind, max(time.time() - known, 0.0) if known is not None else 0.0)

    async def _until_next_round(self) -> None:
        """Until a new block is known (announced, or found by the separate head poll), or the
        next round is due: a second later as a backstop, or at the poll interval after a failed
        round (a subscription that comes up while the watcher waits ends the wait with its first
        block)."""
        patient = not self._failing
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._head.wait(), HEADS_POLL_S if patient else self.poll_interval_s)
        self._head.clear()

    async def _follow_next(self) -> None:
        lost = self.rpc
        await lost.close()
        await self.reader.close()
        url = in_turn(self.endpoints, lost.url)[1]
        self.rpc = RpcClient(url)
        self.reader = BlockReader(self.rpc)
        self._listen(url)
        self._failing, self._progress_at = 0, time.monotonic()
        start = "its next block" if self._next_block is None else f"block {self._next_block}"
        why = f"the block watcher follows {url} from {start}: {self.last_error}"
        self.events.append(EndpointEvent(time.time(), lost.url, False, why))

    def _trim(self, now: float) -> None:
        cut = 0
        while cut < len(self.inclusions) and self.inclusions[cut].t_observed < now - self.retention_s:
            cut += 1
        if cut:
            del self.inclusions[:cut]
            self._inclusion_base += cut

    async def inclusions_since(self, cursor: int, wait_s: float) -> Followed:
        """Inclusions with sequence number ≥ cursor; waits up to wait_s for new ones."""
        end = self._inclusion_base + len(self.inclusions)
        if cursor >= end and wait_s > 0:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)
            end = self._inclusion_base + len(self.inclusions)
        start = max(cursor, self._inclusion_base) - self._inclusion_base
        return Followed(end, self.inclusions[start:], self.read_to, dict(self._heard))

    def take(self) -> WatcherReport:
        """The blocks seen and the endpoint events since the last call (the driver is their only
        reader), and the lag now."""
        blocks, self.blocks = self.blocks, []
        events, self.events = self.events, []
        reorgs, self.reorgs = self.reorgs, []
        receipts = None if self.reader.receipts_via is None else (self.rpc.url, self.reader.receipts_via)
        return WatcherReport(blocks, events, self.lag(), reorgs, receipts)

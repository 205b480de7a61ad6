"""Inclusion following and settling: the sender reads its host's watcher for the blocks that
include its transactions, and at a phase's end waits for the watcher to read the chain up to
its head, looks every remaining hash up on the endpoints, and calls dropped only what no node
has in a block (see actors/sender.py's docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from actors.collector import TxRow
from actors.recovery import look_up
from actors.rpc import LOOKUP_BATCH, RpcError

if TYPE_CHECKING:
    from actors.sender import Sender
    from actors.watcher import Followed

RECENT_INCLUSIONS = 50_000
CATCH_UP_STALL_S = 10.0  # settling waits for a watcher behind the head as long as it reads a block this often


class InclusionFeed(Protocol):
    """The host's watcher as a sender follows it: the inclusions from a cursor on, or None when
    the answer was lost on its way (the sender asks again)."""

    async def inclusions_since(self, cursor: int) -> Followed | None: ...


class Settling:
    def __init__(self, sender: Sender) -> None:
        self.s = sender

    async def drain(self, key: tuple, commit_timeout_s: float) -> None:
        def pending() -> list[TxRow]:
            return [r for r in self.s.inflight.values() if (r.epoch, r.phase) == key]

        commit_deadline = deadline = self.s._last_send + commit_timeout_s
        while pending() and time.time() < deadline:
            if self.s.stopping:  # a stopped run still gives what it sent a moment to land
                deadline = min(deadline, self.s._stop_deadline)
            await asyncio.sleep(0.05)
        if pending():
            self.s._late_after = commit_deadline
            try:
                await self._settle(pending)
            finally:
                self.s._late_after = math.inf
        stuck = {w.spec.worker: w for w in self.s.workers if w.stuck is not None}
        for row in pending():
            del self.s.inflight[row.tx_hash]
            blocked = stuck.get(row.worker)
            if blocked is not None and row.nonce > blocked.stuck_nonce:
                why = f"never includable: {blocked.stuck}"
                self.s.stranded += 1
            elif self.s.stopping:
                why = "run stopped before inclusion"
            else:
                why = f"not in a block {commit_timeout_s:g}s after the last send"
                if row.error:  # what the look-ups found, or what the send's answer said
                    why += f" ({row.error})"
            self.s.collector.finish(row, "dropped", why)

    async def _settle(self, pending: Callable[[], list[TxRow]]) -> None:
        """Before anything is called dropped: the watcher reads the chain up to its head as it is
        now, less the confirmations it waits for, and every hash still pending is looked up on
        the endpoints. One found in a block the watcher has not read yet is waited for through
        the watcher (its inclusion is observed as the watcher saw it, once it is final); one in
        a block it has read (it missed it) is taken from the look-up, observed now. A stopping
        run looks up once and does not wait."""
        head = None if self.s.stopping else await self._head()
        until = None if head is None else head - self.s.sending.confirmations
        # two rounds: the blocks up to the head as the deadline passed, then those the look-ups
        # found (the chain may go on including a backlog for long; what lands after that is for
        # `loadgen report`'s look-up after the run)
        for _ in range(2):
            if not pending() or until is None or not await self._watcher_reaches(until, pending):
                break
            newest = await self._look_up_everywhere(pending, take_all=False)
            until = newest if newest > self.s.read_to else None
        await self._look_up_everywhere(pending, take_all=True)

    async def _look_up_everywhere(self, pending: Callable[[], list[TxRow]], take_all: bool) -> int:
        """What is pending, looked up on each endpoint up in turn (see ``_look_up_included``);
        answers the newest block a receipt named (-1: none)."""
        newest = -1
        for url in self.s.readers:
            if pending() and url not in self.s.endpoints.down:
                rows = sorted(pending(), key=lambda r: (r.worker, r.nonce))
                newest = max(newest, await self._look_up_included(url, rows, take_all))
        return newest

    async def _watcher_reaches(self, until: int, pending: Callable[[], list[TxRow]]) -> bool:
        """Waits while the watcher reads up to block ``until``; False when it stopped making
        progress (or the run is stopping): the look-ups then decide alone."""
        last, progress_at = self.s.read_to, time.monotonic()
        while pending() and self.s.read_to < until:
            if self.s.stopping:
                return False
            if self.s.read_to > last:
                last, progress_at = self.s.read_to, time.monotonic()
            elif time.monotonic() - progress_at > CATCH_UP_STALL_S:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _head(self) -> int | None:
        """The chain's head, from the first endpoint up that answers."""
        for url, rpc in self.s.readers.items():
            if url in self.s.endpoints.down:
                continue
            with contextlib.suppress(RpcError, TypeError, ValueError):
                return int(await rpc.call("eth_blockNumber"), 16)
        return None

    async def _look_up_included(self, url: str, rows: list[TxRow], take_all: bool = False) -> int:
        """Asks ``url`` for the receipts of ``rows``. One in a block the watcher has read (it
        missed it), or any with ``take_all``, is included, observed now; the others are left to
        the watcher. Answers the newest block a receipt named (-1: none)."""
        try:
            found = await look_up(self.s.readers[url], ["0x" + r.tx_hash.hex() for r in rows], LOOKUP_BATCH)
        except RpcError:
            return -1
        newest = -1
        for row, f in zip(rows, found, strict=True):
            if f is None or self.s.inflight.get(row.tx_hash) is not row:
                continue
            if f.inclusion is not None:
                newest = max(newest, f.inclusion.block_number)
                if take_all or f.inclusion.block_number <= self.s.read_to:
                    # observed when the watcher first knew the block existed, when it did: a
                    # watcher stalled on a large block hears the next ones on time, and the
                    # look-up's own time would add the stall to the latency
                    heard = self.s.heard.get(f.inclusion.block_number, f.inclusion.t_observed)
                    row.include(dataclasses.replace(f.inclusion, t_observed=heard))
                    self.s._finish_included(row)
            elif f.pending:
                row.error = "still in a node's pool when the phase ended"
        return newest

    async def follow(self, feed: InclusionFeed) -> None:
        cursor = 0
        while True:
            followed = await feed.inclusions_since(cursor)
            if followed is None:
                await asyncio.sleep(0.5)
                continue
            cursor = followed.cursor
            for inc in followed.inclusions:
                row = self.s.inflight.get(inc.tx_hash)
                if row is None:
                    self.s.recent[inc.tx_hash] = inc
                    if len(self.s.recent) > RECENT_INCLUSIONS:
                        self.s.recent.popitem(last=False)
                elif row.block_number is None:
                    row.include(inc)
                    self.s._finish_included(row)
            self.s.read_to = followed.read_to  # after its inclusions: what is pending now is not in those blocks
            self.s.heard = followed.heard

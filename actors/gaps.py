"""The gap check: accepted transactions that stay out of blocks are looked up, and the ones a
node lost are sent again as the same bytes, so that the nonce gap they would leave is filled
and every later transaction of the worker can still land."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from actors.blocks import Inclusion
from actors.collector import TxRow
from actors.rpc import ALREADY_THERE, LOOKUP_BATCH, RpcError

if TYPE_CHECKING:
    from actors.sender import Sender

MAX_RESENDS = 5
GAP_WINDOW = 100  # a worker's transactions looked up per gap check round, from its gap on
LOG = logging.getLogger(__name__)


class GapCheck:
    def __init__(self, sender: Sender) -> None:
        self.s = sender

    async def run(self, gap_check_s: float) -> None:
        """Looks up accepted transactions that stay out of blocks; re-sends the ones the node lost.
        What a node that went down had accepted is looked up at once on the endpoint that stands
        in for it, and re-sent there as the same bytes if that node does not know it: the nonce
        gap it would leave is filled, and no nonce is used twice."""
        seen_down: set[str] = set()
        while True:
            await asyncio.sleep(gap_check_s / 2)
            try:
                seen_down = await self._round(gap_check_s, seen_down)
            except Exception:  # whatever a node answered, the gap check must live on: counted in stats, logged
                self.s.background_errors += 1
                LOG.exception("gap check round failed")

    async def _round(self, gap_check_s: float, seen_down: set[str]) -> set[str]:
        """One look-up round; answers the endpoints down now (the next round's ``seen_down``)."""
        went_down = self.s.endpoints.down - seen_down
        seen_down = set(self.s.endpoints.down)
        now = time.time()
        for r in self.s.inflight.values():
            if r.endpoint in went_down:
                r.t_checked = 0.0
        old: dict[str, dict[int, list[TxRow]]] = {}  # endpoint → worker → its rows to look at
        for r in self.s.inflight.values():
            if r.block_number is None and now - r.t_checked > gap_check_s and r.resends < MAX_RESENDS:
                old.setdefault(self.s.endpoints.route(r.endpoint), {}).setdefault(r.worker, []).append(r)
        for url, rows_of in old.items():
            await self._check_workers(url, rows_of)
        return seen_down

    async def _check_workers(self, url: str, rows_of: dict[int, list[TxRow]]) -> None:
        """Where each worker's gap is, from the node's pending nonce (what its pool can execute
        next): below it, every transaction is in a block or in the pool, and is not asked about
        (at capacity that is thousands a worker, and on geth 1.10 a look-up of a mined one
        decodes its whole block); from it on, the first ``GAP_WINDOW`` are looked up, and the
        ones the node does not have are sent again. The nonces are read from a watch endpoint
        when there is one (what it has, the network has); the look-ups ask the node that was
        sent to, the one that may have lost them."""
        workers = {w.spec.worker: w for w in self.s.workers}
        asked = [workers[worker] for worker in rows_of if worker in workers]
        calls = [("eth_getTransactionCount", [w.signer.address, "pending"]) for w in asked]
        answers = None
        for reader in dict.fromkeys([*self.s.sending.watch_endpoints, url]):
            with contextlib.suppress(RpcError):
                answers = await self.s.readers[reader].batch(calls)
                break
        if answers is None:
            return
        look: list[TxRow] = []
        for w, answer in zip(asked, answers, strict=True):
            try:
                frontier = int(answer, 16)
            except (TypeError, ValueError):
                frontier = -1  # the node cannot say: the lowest ones are looked up
            rows = sorted((r for r in rows_of[w.spec.worker] if r.nonce >= frontier), key=lambda r: r.nonce)
            look += rows[:GAP_WINDOW]
        for i in range(0, len(look), LOOKUP_BATCH):
            await self._look_up(url, look[i : i + LOOKUP_BATCH])

    async def _look_up(self, url: str, rows: list[TxRow]) -> None:
        try:
            answers = await self.s.clients[url].batch([("eth_getTransactionByHash", ["0x" + r.tx_hash.hex()]) for r in rows])
        except RpcError:
            return
        now = time.time()
        lost: list[TxRow] = []
        for row, answer in zip(rows, answers, strict=True):
            if row.block_number is not None or isinstance(answer, RpcError):
                continue
            row.t_checked = now  # answered: the next look-up waits a full gap_check_s, and others get their turn
            if answer is None and row.raw_body is not None:
                lost.append(row)
            elif isinstance(answer, dict) and answer.get("blockNumber"):
                await self._late_receipt(url, row)
        await asyncio.gather(*(self._resend(url, row) for row in lost))

    async def _resend(self, url: str, row: TxRow) -> None:
        """The node forgot an accepted transaction: the same bytes fill the nonce gap again."""
        assert row.raw_body is not None, "only rows that kept their bytes are re-sent"
        result = await self.s.clients[url].send_raw(row.raw_body)
        row.t_checked = time.time()  # the next look-up waits a full gap_check_s again
        if result.ok or any(s in result.result for s in ALREADY_THERE):
            row.resends += 1
            self.s.gaps_recovered += 1

    async def _late_receipt(self, url: str, row: TxRow) -> None:
        """Mined while its row was not in flight (a retry of bytes a timed-out send had
        delivered): the watcher's report went by, so read the receipt here, observed now."""
        tx_hash = "0x" + row.tx_hash.hex()
        try:
            receipt = await self.s.clients[url].call("eth_getTransactionReceipt", [tx_hash])
            if receipt is None or self.s.inflight.get(row.tx_hash) is not row:  # finished meanwhile (included, or settled)
                return
            inclusion = Inclusion.of(receipt, tx_hash, time.time(), None)
        except RpcError:
            return
        row.include(inclusion)
        self.s._finish_included(row)

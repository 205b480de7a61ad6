"""Workers: each a key, a nonce and a schedule, many of them as asyncio tasks in one actor.

A worker sends in every slot of its phase (see loadgen/plan.py). Its transactions are signed
before their slot comes, so signing is not on the sending path, and a transaction keeps its
nonce until the node accepts it: a rejected transaction does not burn a nonce, and re-sending
it means re-sending the very same bytes.

Two send modes. **Open** (the default): a transaction goes out at its slot whether or not the
node has answered the worker's previous ones, and each answer is handled when it comes, so a
node slow to answer cannot slow the offered load down. Nonces are handed out in send order; a
refusal that comes back after later transactions went out puts the refused transaction (same
bytes, same nonce) in the worker's next free slot, and the later ones wait in the node's queue
behind the gap meanwhile, as they would for any client. At most ``max_unanswered`` sends of a
worker wait for an answer; at the bound the next slot waits, and that wait shows as lag. The
node may receive n+1 before n (separate requests): geth-derived nodes queue it until n comes,
and every answer belongs to its own request, so nothing is misattributed. **Closed**: the worker
waits for each answer before its next slot (a client that waits; today's tools).

Accepted transactions wait in ``inflight`` until the host's block watcher reports their
receipt; one the node has forgotten (it answers null for its hash) is re-sent as it was, which
fills the nonce gap every later transaction of the worker is stuck behind. After a phase's last
slot the actor drains until every accepted transaction is included or ``commit_timeout_s`` has
passed since the last send. Then it settles what is left: it waits until the watcher has read
the chain up to the head (it may be behind blocks of thousands of transactions), looks each
remaining hash up on the endpoints, and only what no node has in a block is dropped. What is
found included after the deadline keeps its inclusion and is marked late (``late_s``): it is on
the chain, but not committed within the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from actors.blocks import Inclusion
from actors.collector import Collector, TxRow
from actors.endpoints import Endpoints, in_turn
from actors.gaps import GapCheck
from actors.pacing import ClosedPacing, OpenPacing
from actors.presign import Presigner
from actors.recovery import Recovery, Resume
from actors.rpc import ALREADY_THERE, RpcClient, RpcError, SendResult
from actors.settling import InclusionFeed, Settling
from actors.stats import SenderStats
from loadgen.chains.fees import Fees
from loadgen.chains.signer import SignedTx, Signer
from loadgen.engine.ledger import WorkerRecord
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.engine.sending import Sending
from loadgen.workloads.base import Payload

TIMER_TICK_S = 0.001  # a send may leave this much before its slot: lag is measured from the slot, negative then

OPEN_CONNECTIONS = 256  # per endpoint and actor
LOG = logging.getLogger(__name__)


@dataclass
class Worker:
    spec: WorkerSpec
    signer: Signer
    rpc: RpcClient  # where it sends now: its own endpoint (spec.endpoint), or another while that one is down
    nonce: int = 0  # the nonce of the next new item
    ahead: deque[SignedTx] = field(default_factory=deque)  # signed items from the next new one on
    # open mode: a nonce the node never accepted, with later ones sent behind it; the worker
    # sends nothing more in the run (its later transactions could only land out of order)
    stuck: str | None = None
    stuck_nonce: int = -1


def _hash_from(answer: str) -> bytes | None:
    """The transaction hash the node answered, if it is one."""
    if len(answer) == 66 and answer.startswith("0x"):
        try:
            return bytes.fromhex(answer[2:])
        except ValueError:
            return None
    return None


class Sender:
    """The workers of one actor, the transactions they have in flight, and their rows."""

    def __init__(self, run_id: str, node: str, chain_id: int, fees: Fees, sending: Sending | None = None) -> None:
        sending = sending or Sending()
        self.node = node
        self.sending = sending
        self.send_mode = sending.send_mode
        self.max_unanswered = sending.max_unanswered
        self.chain_id = chain_id
        self.fees = fees
        self.collector = Collector(run_id, node)
        self.workers: list[Worker] = []
        self.clients: dict[str, RpcClient] = {}  # every endpoint of the run, in the run's order
        self.endpoints = Endpoints(self.clients, sending.failover, sending.failover_after)
        # where the chain is read (heads, pending nonces, look-ups): the watch endpoints, then the run's
        self.readers: dict[str, RpcClient] = {}
        self.inflight: dict[bytes, TxRow] = {}
        # inclusions of hashes not (yet) in flight: a receipt can beat the node's answer
        self.recent: OrderedDict[bytes, Inclusion] = OrderedDict()
        self.stopping = False
        self._stop_deadline = math.inf  # what was sent before a stop may land until then
        self._late_after = math.inf  # while a phase settles: its commit deadline; included after it is late
        self.read_to = -1  # the last block the host's watcher has read whole
        self.heard: dict[int, float] = {}  # the blocks after it: when the watcher first knew each existed
        self.sent = 0
        self.accepted = 0
        self.scheduled = 0
        self.gaps_recovered = 0
        self.stranded = 0  # accepted, then stuck in a node's queue behind a nonce that was given up
        self.failovers = 0  # times a worker moved off its own endpoint
        self.odd_answers = 0  # sends accepted with something else than the transaction's hash
        self.unconfirmed = 0  # sends whose answer was lost: followed as if accepted
        self.recovered = 0  # rows rebuilt from the chain for a lost actor's workers
        self.background_errors = 0  # unexpected errors the gap check survived
        self.max_lag_s = 0.0
        self.max_answer_s = 0.0
        self._last_send = 0.0
        self._tasks: list[asyncio.Task] = []
        self.presigner = Presigner(fees)
        self.settling = Settling(self)
        self.open = OpenPacing(self)  # the run's mode, or a lost actor's workers' whatever the run's
        self.gap_check = GapCheck(self)

    # set-up ------------------------------------------------------------------------------
    async def add_workers(self, specs: list[WorkerSpec], keys: list[bytes], endpoints: list[str] | None = None) -> list[str]:
        """``endpoints``: all of the run's, in order (any of them may carry a worker while its
        own is down); the workers' own when absent."""
        # open mode: many sends wait for their answers at once; beyond the pool a send waits
        # for a connection, and t_sent is taken only when it has one (see RpcClient.send_raw)
        pool = OPEN_CONNECTIONS if self.send_mode == "open" else 64
        for url in endpoints or dict.fromkeys(s.endpoint for s in specs):
            self.clients.setdefault(url, RpcClient(url, connections=pool))
        for spec, key in zip(specs, keys, strict=True):
            rpc = self.clients.setdefault(spec.endpoint, RpcClient(spec.endpoint, connections=pool))
            self.workers.append(Worker(spec, Signer(key, self.chain_id), rpc))
        for url in self.sending.watch_endpoints:
            self.readers.setdefault(url, self.clients.get(url) or RpcClient(url, connections=8))
        for url, rpc in self.clients.items():
            self.readers.setdefault(url, rpc)
        await refresh_nonces(self.workers, self.clients)
        return [w.signer.address for w in self.workers]

    def start_background(self, feed: InclusionFeed) -> None:
        self._tasks = [
            asyncio.create_task(self.settling.follow(feed)),
            asyncio.create_task(self.gap_check.run(self.sending.gap_check_s)),
            asyncio.create_task(self.endpoints.keep_probing()),
        ]

    def follow(self, feed: InclusionFeed) -> None:
        """Reads inclusions from ``feed`` from now on, from its first retained one."""
        self._tasks[0].cancel()
        self._tasks[0] = asyncio.create_task(self.settling.follow(feed))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rpc in {id(rpc): rpc for rpc in [*self.clients.values(), *self.readers.values()]}.values():
            await rpc.close()

    # one phase ---------------------------------------------------------------------------
    def prepare_phase(self, phase: PhaseSpec, payload: Payload) -> int:
        """Signs ahead before the phase's t0 is set (see actors/presign.py)."""
        return self.presigner.prepare(self.workers, phase, payload)

    async def run_phase(
        self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, resume: dict[int, Resume] | None = None
    ) -> dict:
        if not self.presigner.prepared_for(payload):
            self.prepare_phase(phase, payload)
        key = (payload.epoch, phase.name)
        if resume is not None:  # a lost actor's workers go on in open mode, whatever the run's (see recover_phase)
            await asyncio.gather(*(self.open.run(w, phase, t0, resume[w.spec.worker]) for w in self.workers))
        else:
            pacing = self.open if self.send_mode == "open" else ClosedPacing(self)
            await asyncio.gather(*(pacing.run(w, phase, t0) for w in self.workers))
        self.presigner.done()
        await self.settling.drain(key, commit_timeout_s)
        return {"scheduled": self.scheduled, "sent": self.sent}

    async def recover_phase(
        self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, bases: dict[int, int], known: dict[int, WorkerRecord]
    ) -> dict:
        """Takes over a lost actor's workers mid-phase: rebuilds from the chain the rows the lost
        actor never handed over (``known``: what the driver stored), then runs the rest of the
        phase from the next slot (see actors/recovery.py)."""
        self.presigner.start(payload)  # signed as it goes: it starts late already
        self._last_send = max(self._last_send, time.time())  # what it adopts in flight gets the whole commit timeout
        resume = {}
        for w in self.workers:
            resume[w.spec.worker] = await Recovery(self).rebuild(w, phase, payload, t0, bases[w.spec.worker], known[w.spec.worker])
        return await self.run_phase(phase, payload, t0, commit_timeout_s, resume)

    def _route(self, w: Worker) -> None:
        """Moves the worker to where its next send should go (see actors/endpoints.py)."""
        url = self.endpoints.route(w.spec.endpoint)
        if url != w.rpc.url:
            if url != w.spec.endpoint:
                self.failovers += 1
            w.rpc = self.clients[url]

    def _row(self, w: Worker, phase: PhaseSpec, p: Payload, chunk: int, attempt: int, signed: SignedTx, t_scheduled: float) -> TxRow:
        row = TxRow(
            p.epoch, p.round_id, w.spec.worker, w.spec.pool, phase.name, chunk, attempt, signed.nonce, w.rpc.url, b"", signed.size,
            t_scheduled,
        )  # fmt: skip
        self.scheduled += 1
        return row

    def _stamp(self, row: TxRow) -> None:
        """The request leaves now (it has a connection)."""
        row.t_sent = time.time()
        self.max_lag_s = max(self.max_lag_s, row.t_sent - row.t_scheduled)

    def _answered(self, row: TxRow) -> None:
        row.t_acked = row.t_checked = time.time()
        self.sent += 1
        self._last_send = max(self._last_send, row.t_acked)
        self.max_answer_s = max(self.max_answer_s, row.t_acked - row.t_sent)

    def _accepted(self, row: TxRow, signed: SignedTx, result: SendResult) -> bool:
        """Records the node's answer: accepted (in flight from now on) or a rejected row. A send
        whose answer was lost (timeout, a broken answer) may have reached the node: it is in
        flight too, so a receipt finds its row, and the gap check sends the same bytes again if
        the node does not know it; its row says what came back."""
        if result.maybe_delivered:
            row.error = f"{result.kind}: {result.result} (the node may have it: followed as sent)"
            self.unconfirmed += 1
        if result.ok or result.maybe_delivered or any(s in result.result for s in ALREADY_THERE):
            # the hash is the transaction's own: a node that answers another one is noted, not believed
            row.tx_hash = signed.tx_hash
            if result.ok and _hash_from(result.result) != signed.tx_hash:
                self.odd_answers += 1
            row.raw_body = signed.body
            self._in_flight(row)
            self.accepted += 1
            return True
        row.tx_hash = signed.tx_hash
        self.collector.finish(row, "rejected", f"{result.kind}: {result.result}")
        return False

    def _in_flight(self, row: TxRow) -> None:
        inclusion = self.recent.pop(row.tx_hash, None)
        if inclusion is not None:  # the receipt came before the node's answer
            row.include(inclusion)
            self._finish_included(row)
        else:
            self.inflight[row.tx_hash] = row

    def _unsent(self, w: Worker, phase: PhaseSpec, p: Payload, t0: float, slot: int, entries: list[tuple[int, int]], why: str) -> None:
        """Rows for what was scheduled and never sent, so every scheduled transaction has one:
        ``entries`` are (chunk, attempt) in the order of the slots from ``slot`` on (a chunk
        stopped between two of its attempts is numbered as its next attempt)."""
        for j, (chunk, attempt) in enumerate(entries):
            row = TxRow(
                p.epoch, p.round_id, w.spec.worker, w.spec.pool, phase.name, chunk, attempt, -1, w.rpc.url, b"", 0,
                phase.slot_time(t0, w.spec.worker, slot + j),
            )  # fmt: skip
            self.scheduled += 1
            self.collector.finish(row, "unsent", why)

    async def _sleep_until(self, t: float) -> bool:
        """False once the run stops: a slot due after that is never sent."""
        slept = False
        while not self.stopping:
            delay = t - time.time()
            # the event loop's timers tick in milliseconds (uvloop's clock): within one tick of
            # the slot, another sleep would wake at once, again and again, until the slot passed
            if delay <= TIMER_TICK_S:
                if slept:
                    return True
                # behind its schedule, a worker would send slot after slot without letting the
                # loop run anything else, the driver's stop included (thousands of workers: a
                # minute): one turn of the loop each
                await asyncio.sleep(0)
                return not self.stopping
            await asyncio.sleep(min(delay, 0.5))
            slept = True
        return False

    def stop(self, grace_s: float) -> None:
        self.stopping = True
        self._stop_deadline = time.time() + grace_s

    # inclusion and gaps ---------------------------------------------------------------------
    def _finish_included(self, row: TxRow) -> None:
        self.inflight.pop(row.tx_hash, None)
        if row.t_included > self._late_after:
            row.late_s = row.t_included - self._late_after
        self.collector.finish(row, "committed" if row.status == "ok" else "reverted")

    def stats(self) -> SenderStats:
        counts = self.collector.counts
        return SenderStats(
            scheduled=self.scheduled,
            sent=self.sent,
            accepted=self.accepted,
            committed=counts["committed"],
            reverted=counts["reverted"],
            rejected=counts["rejected"],
            dropped=counts["dropped"],
            unsent=counts["unsent"],
            gaps_recovered=self.gaps_recovered,
            stranded=self.stranded,
            failovers=self.failovers,
            odd_answers=self.odd_answers,
            unconfirmed=self.unconfirmed,
            recovered=self.recovered,
            background_errors=self.background_errors,
            inflight=len(self.inflight),
            recent=len(self.recent),
            max_lag_s=self.max_lag_s,
            max_answer_s=self.max_answer_s,
        )


async def refresh_nonces(workers: list[Worker], clients: dict[str, RpcClient]) -> None:
    """Each worker's next nonce from the node's pending count: asked of its own endpoint, or
    of the next ones in the run's order when that one does not answer (a replacement actor
    may start while a node is down)."""
    urls = list(clients)
    for home in urls:
        mine = [w for w in workers if w.rpc.url == home]
        error: RpcError | None = None
        for url in in_turn(urls, home) if mine else []:
            try:
                answers = await clients[url].batch([("eth_getTransactionCount", [w.signer.address, "pending"]) for w in mine])
                nonces = [int(a, 16) for a in answers if not isinstance(a, RpcError)]
            except (RpcError, TypeError, ValueError) as e:
                error = e if isinstance(e, RpcError) else RpcError("rpc", f"not a nonce: {e}")
                continue
            if len(nonces) == len(mine):
                for w, nonce in zip(mine, nonces, strict=True):
                    w.nonce = nonce
                break
            error = next(a for a in answers if isinstance(a, RpcError))
        else:
            if error is not None:
                raise error

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
import heapq
import itertools
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import ray

from actors.collector import Collector, TxRow
from actors.endpoints import EndpointEvent, Endpoints, in_turn
from actors.profiling import profiled
from actors.recovery import Resume, look_up, next_slot
from actors.rpc import RpcClient, RpcError, SendResult
from actors.signer import SignedTx, Signer, sign_with
from actors.stats import SenderStats
from actors.watcher import Inclusion
from loadgen.chains.fees import Fees
from loadgen.engine.ledger import WorkerRecord
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.engine.sending import Sending
from loadgen.workloads.base import CallBuilder, Payload

TIMER_TICK_S = 0.001  # a send may leave this much before its slot: lag is measured from the slot, negative then

# Answers meaning the node already has this very transaction: accepted after all.
ALREADY_THERE = ("already known", "known transaction", "already imported", "nonce too low")
MAX_RESENDS = 5
GAP_WINDOW = 100  # a worker's transactions looked up per gap check round, from its gap on
LOOKUP_BATCH = 200  # calls in one batch: geth refuses batches of more than 1,000 and answers of more than 25 MB
OPEN_CONNECTIONS = 256  # per endpoint and actor
PRESIGN_BUDGET_BYTES = 64 * 1024 * 1024  # signed transactions held ahead, per actor
RECENT_INCLUSIONS = 50_000
CATCH_UP_STALL_S = 10.0  # settling waits for a watcher behind the head as long as it reads a block this often
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


@dataclass
class _Answers:
    """An open-mode worker's sends in flight to the node, and what their answers asked for."""

    retry: list[tuple[int, int]] = field(default_factory=list)  # heap of (nonce, item) refused, to send again
    attempts: dict[int, int] = field(default_factory=dict)  # item → sends so far
    unaccepted: dict[int, SignedTx] = field(default_factory=dict)  # item → its bytes, until accepted
    unanswered: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    gave_up: str | None = None


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
        self._payload: Payload | None = None
        self._builder: CallBuilder | None = None
        self._depth = 1
        self.presign_budget_bytes = PRESIGN_BUDGET_BYTES

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
        await self.refresh_nonces()
        return [w.signer.address for w in self.workers]

    async def refresh_nonces(self) -> None:
        """Each worker's next nonce from the node's pending count: asked of its own endpoint, or
        of the next ones in the run's order when that one does not answer (a replacement actor
        may start while a node is down)."""
        urls = list(self.clients)
        for home in urls:
            mine = [w for w in self.workers if w.rpc.url == home]
            error: RpcError | None = None
            for url in in_turn(urls, home) if mine else []:
                try:
                    answers = await self.clients[url].batch([("eth_getTransactionCount", [w.signer.address, "pending"]) for w in mine])
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

    def start_background(self, watcher: ray.actor.ActorHandle) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(watcher)),
            asyncio.create_task(self._check_gaps(self.sending.gap_check_s)),
            asyncio.create_task(self.endpoints.keep_probing()),
        ]

    def follow(self, watcher: ray.actor.ActorHandle) -> None:
        """Reads inclusions from ``watcher`` from now on, from its first retained one."""
        self._tasks[0].cancel()
        self._tasks[0] = asyncio.create_task(self._follow(watcher))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rpc in {id(rpc): rpc for rpc in [*self.clients.values(), *self.readers.values()]}.values():
            await rpc.close()

    # one phase ---------------------------------------------------------------------------
    def prepare_phase(self, phase: PhaseSpec, payload: Payload) -> int:
        """Signs each worker's first transactions before the phase's t0 is set: as many as fit
        the actor's budget, so that signing stays off the sending path."""
        self._payload, self._builder = payload, payload.builder()
        # every transaction of a phase is about as large as its first: one estimate serves all
        size = len(self._builder.call(self.workers[0].spec, self.workers[0].signer.address, 0).data) + 200 if self.workers else 1
        depth = max(1, self.presign_budget_bytes // (2 * size * max(len(self.workers), 1)))  # hex: 2 bytes a byte
        signed = 0
        for w in self.workers:
            w.ahead.clear()
            for item in range(min(depth, phase.items[w.spec.worker])):
                w.ahead.append(self._sign(w, item, w.nonce + item, phase.gas_limit))
                signed += 1
        self._depth = depth
        return signed

    async def run_phase(
        self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, resume: dict[int, Resume] | None = None
    ) -> dict:
        if self._builder is None or self._payload != payload:
            self.prepare_phase(phase, payload)
        key = (payload.epoch, phase.name)
        if resume is not None:  # a lost actor's workers go on in open mode, whatever the run's (see recover_phase)
            await asyncio.gather(*(self._run_worker_open(w, phase, t0, resume[w.spec.worker]) for w in self.workers))
        else:
            run_worker = self._run_worker_open if self.send_mode == "open" else self._run_worker
            await asyncio.gather(*(run_worker(w, phase, t0) for w in self.workers))
        self._payload = self._builder = None
        await self._drain(key, commit_timeout_s)
        return {"scheduled": self.scheduled, "sent": self.sent}

    async def recover_phase(
        self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, bases: dict[int, int], known: dict[int, WorkerRecord]
    ) -> dict:
        """Takes over a lost actor's workers mid-phase: rebuilds from the chain the rows the lost
        actor never handed over (``known``: what the driver stored), then runs the rest of the
        phase from the next slot (see actors/recovery.py)."""
        self._payload, self._builder = payload, payload.builder()  # signed as it goes: it starts late already
        self._last_send = max(self._last_send, time.time())  # what it adopts in flight gets the whole commit timeout
        resume = {}
        for w in self.workers:
            resume[w.spec.worker] = await self._recover(w, phase, payload, t0, bases[w.spec.worker], known[w.spec.worker])
        return await self.run_phase(phase, payload, t0, commit_timeout_s, resume)

    async def _recover(self, w: Worker, phase: PhaseSpec, p: Payload, t0: float, base: int, record: WorkerRecord) -> Resume:
        index = w.spec.worker
        sent = min(max(w.nonce - base, 0), phase.items[index])  # w.nonce: the node's pending count, read at set-up
        candidates = list(itertools.takewhile(lambda i: i < sent, (n - base for n in record.included.missing_from(base))))
        signed = {i: self._sign(w, i, base + i, phase.gas_limit) for i in candidates}
        try:
            found = await look_up(w.rpc, ["0x" + signed[i].tx_hash.hex() for i in candidates])
        except RpcError:  # the node cannot say: what it would have said is sent again (same bytes, same nonces)
            found = [None] * len(candidates)
        now = time.time()
        free = record.chunks.missing_from(0)  # fixed slots: slots without a stored row
        retry: list[int] = []
        used = record.chunks.floor + len(record.chunks.above)
        for i, f in zip(candidates, found, strict=True):
            if f is None:
                retry.append(i)
                continue
            chunk = next(free) if phase.fixed_slots else i
            used += 1
            row = self._row(w, phase, p, chunk, record.attempts(chunk) + 1, signed[i], phase.slot_time(t0, index, chunk))
            row.recovered, row.error = True, "rebuilt from the chain: its sender actor was lost (sent at a time not known)"
            row.tx_hash, row.raw_body, row.t_checked = signed[i].tx_hash, signed[i].body, now
            self.recovered += 1
            if f.inclusion is not None:
                self._record_inclusion(row, f.inclusion)
                self._finish_included(row)
            else:
                self._in_flight(row)
        slot = next_slot(phase, t0, index, used if phase.fixed_slots else 0, now)
        if phase.fixed_slots:  # slots before it without a row: lost with the actor, or passed while none was there
            lost = list(itertools.takewhile(lambda s: s < slot, free))
            for s in lost:
                row = TxRow(
                    p.epoch, p.round_id, index, w.spec.pool, phase.name, s, 1, -1, w.rpc.url, b"", 0, phase.slot_time(t0, index, s)
                )  # fmt: skip
                row.recovered = True
                self.scheduled += 1
                self.recovered += 1
                self.collector.finish(row, "unsent", "its sender actor was lost: nothing of it reached the chain")
        # paced phases number attempts per item: those stored go on from where they were
        stored = itertools.chain(retry, range(sent, record.chunks.floor), (c for c in record.chunks.above if c >= sent))
        attempts = {i: record.attempts(i) for i in stored} if not phase.fixed_slots else {}
        return Resume(base, slot, sent, tuple(retry), attempts)

    def _sign(self, w: Worker, item: int, nonce: int, gas: int) -> SignedTx:
        assert self._builder is not None, "signed only within a prepared phase"
        call = self._builder.call(w.spec, w.signer.address, item)
        return sign_with(w.signer, self.fees, nonce=nonce, gas=gas, to=call.to, data=call.data, value=call.value)

    def _top_up(self, w: Worker, phase: PhaseSpec, item: int, nonce: int) -> None:
        """Keeps the signed queue (from ``item``, whose nonce is ``nonce``) as deep as it was
        prepared: one more signed while there is time before the next slot."""
        if len(w.ahead) < self._depth and item + len(w.ahead) < phase.items[w.spec.worker]:
            w.ahead.append(self._sign(w, item + len(w.ahead), nonce + len(w.ahead), phase.gas_limit))

    async def _run_worker(self, w: Worker, phase: PhaseSpec, t0: float) -> None:
        index = w.spec.worker
        items = phase.items[index]
        p = self._payload
        assert p is not None, "run_phase prepared the phase"
        slot = item = attempt = 0
        gave_up = None
        while item < items and not (phase.fixed_slots and slot >= items):
            if not w.ahead:
                w.ahead.append(self._sign(w, item, w.nonce, phase.gas_limit))
            signed = w.ahead[0]
            t_scheduled = phase.slot_time(t0, index, slot)
            if not await self._sleep_until(t_scheduled):
                break
            self._route(w)
            row = self._row(w, phase, p, slot if phase.fixed_slots else item, attempt + 1, signed, t_scheduled)
            result = await w.rpc.send_raw(signed.body, partial(self._stamp, row))
            self._answered(row)
            slot += 1
            if self._accepted(row, signed, result):
                w.ahead.popleft()
                w.nonce += 1
                item += 1
                attempt = 0
                self._top_up(w, phase, item, w.nonce)
                continue
            attempt += 1
            if phase.max_retries is not None and attempt > phase.max_retries:
                gave_up = f"gave up: item {item} rejected {attempt} times"
                break
        w.ahead.clear()
        if gave_up:
            # the abandoned chunk's fate is in its rejected rows: no attempt of it was left unsent
            item, attempt = item + 1, 0
        remaining = range(slot, items) if phase.fixed_slots else range(item, items)
        entries = [(chunk, attempt + 1 if j == 0 and not phase.fixed_slots else 1) for j, chunk in enumerate(remaining)]
        self._unsent(w, phase, p, t0, slot, entries, gave_up or "run stopped")

    async def _run_worker_open(self, w: Worker, phase: PhaseSpec, t0: float, resume: Resume | None = None) -> None:
        """Sends at every slot without waiting for the node's answers (see the module's docstring);
        from where ``resume`` says when it picks up a lost actor's worker."""
        index = w.spec.worker
        items = phase.items[index]
        p = self._payload
        assert p is not None, "run_phase prepared the phase"
        if w.stuck is not None:
            self._unsent(w, phase, p, t0, 0, [(i, 1) for i in range(items)], w.stuck)
            return
        state = _Answers()
        sends: set[asyncio.Task] = set()
        base, slot, new = w.nonce, 0, 0  # nonce of item 0; slots used; new items sent
        if resume is not None:
            base, slot, new = resume.base, resume.slot, resume.new
            w.ahead.clear()
            for item in resume.retry:
                state.unaccepted[item] = self._sign(w, item, base + item, phase.gas_limit)
                heapq.heappush(state.retry, (base + item, item))
            state.attempts.update(resume.attempts)
        while state.gave_up is None and not (phase.fixed_slots and slot >= items):
            if not state.retry and new >= items:
                if not state.unanswered:
                    break
                state.changed.clear()  # everything sent: an answer may still ask for a re-send
                await state.changed.wait()
                continue
            t_scheduled = phase.slot_time(t0, index, slot)
            sleeping = await self._sleep_until(t_scheduled)
            while sleeping and state.unanswered >= self.max_unanswered and not self.stopping:
                state.changed.clear()  # at the bound: this slot waits (and shows as lag)
                await state.changed.wait()
            if not sleeping or self.stopping or state.gave_up is not None:
                break
            # chosen at the slot, not before it: a refusal answered meanwhile goes first
            if state.retry:
                item = heapq.heappop(state.retry)[1]
                signed = state.unaccepted[item]
            else:
                item, new = new, new + 1
                signed = w.ahead.popleft() if w.ahead else self._sign(w, item, base + item, phase.gas_limit)
                state.unaccepted[item] = signed
            attempt = state.attempts.get(item, 0) + 1
            state.attempts[item] = attempt
            self._route(w)
            row = self._row(w, phase, p, slot if phase.fixed_slots else item, attempt, signed, t_scheduled)
            slot += 1
            state.unanswered += 1
            task = asyncio.create_task(self._send_open(w, phase, row, item, signed, state))
            sends.add(task)
            task.add_done_callback(sends.discard)
            self._top_up(w, phase, new, base + new)
        while state.unanswered:  # every send gets its answer (and its row) before the phase ends
            state.changed.clear()
            await state.changed.wait()
        w.ahead.clear()
        w.nonce = base + new
        why = state.gave_up or "run stopped"
        if phase.fixed_slots:
            entries = [(chunk, 1) for chunk in range(slot, items)]
        else:
            waiting = sorted((item, state.attempts.get(item, 0) + 1) for _, item in state.retry)
            entries = waiting + [(item, 1) for item in range(new, items)]
        self._unsent(w, phase, p, t0, slot, entries, why)
        if state.unaccepted:
            first = min(state.unaccepted.values(), key=lambda s: s.nonce)
            later = new - 1 - (first.nonce - base)
            if later > 0:
                w.stuck_nonce = first.nonce
                where = f"{phase.name}, epoch {p.epoch}"
                w.stuck = f"nonce {first.nonce} was never accepted ({where}); {later} later transaction(s) wait behind it"
            else:
                w.nonce = first.nonce  # nothing was sent behind it: the nonce is free for what comes next

    async def _send_open(self, w: Worker, phase: PhaseSpec, row: TxRow, item: int, signed: SignedTx, state: _Answers) -> None:
        try:
            result = await w.rpc.send_raw(signed.body, partial(self._stamp, row))
            self._answered(row)
            if self._accepted(row, signed, result):
                del state.unaccepted[item]
                state.attempts.pop(item, None)  # kept only while an item may be sent again: a long phase stays small
            elif phase.max_retries is not None and state.attempts[item] > phase.max_retries:
                state.gave_up = f"gave up: item {item} rejected {state.attempts[item]} times"
            else:
                heapq.heappush(state.retry, (signed.nonce, item))
        finally:
            state.unanswered -= 1
            state.changed.set()

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
            self._record_inclusion(row, inclusion)
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

    async def _drain(self, key: tuple, commit_timeout_s: float) -> None:
        def pending() -> list[TxRow]:
            return [r for r in self.inflight.values() if (r.epoch, r.phase) == key]

        commit_deadline = deadline = self._last_send + commit_timeout_s
        while pending() and time.time() < deadline:
            if self.stopping:  # a stopped run still gives what it sent a moment to land
                deadline = min(deadline, self._stop_deadline)
            await asyncio.sleep(0.05)
        if pending():
            self._late_after = commit_deadline
            try:
                await self._settle(pending)
            finally:
                self._late_after = math.inf
        stuck = {w.spec.worker: w for w in self.workers if w.stuck is not None}
        for row in pending():
            del self.inflight[row.tx_hash]
            blocked = stuck.get(row.worker)
            if blocked is not None and row.nonce > blocked.stuck_nonce:
                why = f"never includable: {blocked.stuck}"
                self.stranded += 1
            elif self.stopping:
                why = "run stopped before inclusion"
            else:
                why = f"not in a block {commit_timeout_s:g}s after the last send"
                if row.error:  # what the look-ups found, or what the send's answer said
                    why += f" ({row.error})"
            self.collector.finish(row, "dropped", why)

    async def _settle(self, pending: Callable[[], list[TxRow]]) -> None:
        """Before anything is called dropped: the watcher reads the chain up to its head as it is
        now, less the confirmations it waits for, and every hash still pending is looked up on
        the endpoints. One found in a block the watcher has not read yet is waited for through
        the watcher (its inclusion is observed as the watcher saw it, once it is final); one in
        a block it has read (it missed it) is taken from the look-up, observed now. A stopping
        run looks up once and does not wait."""
        head = None if self.stopping else await self._head()
        until = None if head is None else head - self.sending.confirmations
        # two rounds: the blocks up to the head as the deadline passed, then those the look-ups
        # found (the chain may go on including a backlog for long; what lands after that is for
        # `loadgen report`'s look-up after the run)
        for _ in range(2):
            if not pending() or until is None or not await self._watcher_reaches(until, pending):
                break
            newest = await self._look_up_everywhere(pending, take_all=False)
            until = newest if newest > self.read_to else None
        await self._look_up_everywhere(pending, take_all=True)

    async def _look_up_everywhere(self, pending: Callable[[], list[TxRow]], take_all: bool) -> int:
        """What is pending, looked up on each endpoint up in turn (see ``_look_up_included``);
        answers the newest block a receipt named (-1: none)."""
        newest = -1
        for url in self.readers:
            if pending() and url not in self.endpoints.down:
                rows = sorted(pending(), key=lambda r: (r.worker, r.nonce))
                newest = max(newest, await self._look_up_included(url, rows, take_all))
        return newest

    async def _watcher_reaches(self, until: int, pending: Callable[[], list[TxRow]]) -> bool:
        """Waits while the watcher reads up to block ``until``; False when it stopped making
        progress (or the run is stopping): the look-ups then decide alone."""
        last, progress_at = self.read_to, time.monotonic()
        while pending() and self.read_to < until:
            if self.stopping:
                return False
            if self.read_to > last:
                last, progress_at = self.read_to, time.monotonic()
            elif time.monotonic() - progress_at > CATCH_UP_STALL_S:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _head(self) -> int | None:
        """The chain's head, from the first endpoint up that answers."""
        for url, rpc in self.readers.items():
            if url in self.endpoints.down:
                continue
            with contextlib.suppress(RpcError, TypeError, ValueError):
                return int(await rpc.call("eth_blockNumber"), 16)
        return None

    async def _look_up_included(self, url: str, rows: list[TxRow], take_all: bool = False) -> int:
        """Asks ``url`` for the receipts of ``rows``. One in a block the watcher has read (it
        missed it), or any with ``take_all``, is included, observed now; the others are left to
        the watcher. Answers the newest block a receipt named (-1: none)."""
        try:
            found = await look_up(self.readers[url], ["0x" + r.tx_hash.hex() for r in rows], LOOKUP_BATCH)
        except RpcError:
            return -1
        newest = -1
        for row, f in zip(rows, found, strict=True):
            if f is None or self.inflight.get(row.tx_hash) is not row:
                continue
            if f.inclusion is not None:
                newest = max(newest, f.inclusion.block_number)
                if take_all or f.inclusion.block_number <= self.read_to:
                    self._record_inclusion(row, f.inclusion)
                    self._finish_included(row)
            elif f.pending:
                row.error = "still in a node's pool when the phase ended"
        return newest

    def stop(self, grace_s: float) -> None:
        self.stopping = True
        self._stop_deadline = time.time() + grace_s

    # inclusion and gaps ---------------------------------------------------------------------
    def _finish_included(self, row: TxRow) -> None:
        self.inflight.pop(row.tx_hash, None)
        if row.t_included > self._late_after:
            row.late_s = row.t_included - self._late_after
        self.collector.finish(row, "committed" if row.status == "ok" else "reverted")

    @staticmethod
    def _record_inclusion(row: TxRow, inc: Inclusion) -> None:
        row.block_number = inc.block_number
        row.t_included = inc.t_observed
        row.block_timestamp = math.nan if inc.block_timestamp_s is None else inc.block_timestamp_s
        row.gas_used = inc.gas_used
        row.effective_gas_price = inc.effective_gas_price
        row.status = "ok" if inc.status == 1 else "failed"

    async def _follow(self, watcher: ray.actor.ActorHandle) -> None:
        cursor = 0
        while True:
            try:
                followed = await watcher.inclusions_since.remote(cursor)
            except ray.exceptions.RayError:  # the watcher failed to answer this once: ask again
                await asyncio.sleep(0.5)
                continue
            cursor = followed.cursor
            for inc in followed.inclusions:
                row = self.inflight.get(inc.tx_hash)
                if row is None:
                    self.recent[inc.tx_hash] = inc
                    if len(self.recent) > RECENT_INCLUSIONS:
                        self.recent.popitem(last=False)
                elif row.block_number is None:
                    self._record_inclusion(row, inc)
                    self._finish_included(row)
            self.read_to = followed.read_to  # after its inclusions: what is pending now is not in those blocks

    async def _check_gaps(self, gap_check_s: float) -> None:
        """Looks up accepted transactions that stay out of blocks; re-sends the ones the node lost.
        What a node that went down had accepted is looked up at once on the endpoint that stands
        in for it, and re-sent there as the same bytes if that node does not know it: the nonce
        gap it would leave is filled, and no nonce is used twice."""
        seen_down: set[str] = set()
        while True:
            await asyncio.sleep(gap_check_s / 2)
            try:
                seen_down = await self._check_gaps_once(gap_check_s, seen_down)
            except Exception:  # whatever a node answered, the gap check must live on: counted in stats, logged
                self.background_errors += 1
                LOG.exception("gap check round failed")

    async def _check_gaps_once(self, gap_check_s: float, seen_down: set[str]) -> set[str]:
        """One look-up round; answers the endpoints down now (the next round's ``seen_down``)."""
        went_down = self.endpoints.down - seen_down
        seen_down = set(self.endpoints.down)
        now = time.time()
        for r in self.inflight.values():
            if r.endpoint in went_down:
                r.t_checked = 0.0
        old: dict[str, dict[int, list[TxRow]]] = {}  # endpoint → worker → its rows to look at
        for r in self.inflight.values():
            if r.block_number is None and now - r.t_checked > gap_check_s and r.resends < MAX_RESENDS:
                old.setdefault(self.endpoints.route(r.endpoint), {}).setdefault(r.worker, []).append(r)
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
        workers = {w.spec.worker: w for w in self.workers}
        asked = [workers[worker] for worker in rows_of if worker in workers]
        calls = [("eth_getTransactionCount", [w.signer.address, "pending"]) for w in asked]
        answers = None
        for reader in dict.fromkeys([*self.sending.watch_endpoints, url]):
            with contextlib.suppress(RpcError):
                answers = await self.readers[reader].batch(calls)
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
            answers = await self.clients[url].batch([("eth_getTransactionByHash", ["0x" + r.tx_hash.hex()]) for r in rows])
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
        result = await self.clients[url].send_raw(row.raw_body)
        row.t_checked = time.time()  # the next look-up waits a full gap_check_s again
        if result.ok or any(s in result.result for s in ALREADY_THERE):
            row.resends += 1
            self.gaps_recovered += 1

    async def _late_receipt(self, url: str, row: TxRow) -> None:
        """Mined while its row was not in flight (a retry of bytes a timed-out send had
        delivered): the watcher's report went by, so read the receipt here, observed now."""
        tx_hash = "0x" + row.tx_hash.hex()
        try:
            receipt = await self.clients[url].call("eth_getTransactionReceipt", [tx_hash])
            if receipt is None or self.inflight.get(row.tx_hash) is not row:  # finished meanwhile (included, or settled)
                return
            inclusion = Inclusion.of(receipt, tx_hash, time.time(), None)
        except RpcError:
            return
        self._record_inclusion(row, inclusion)
        self._finish_included(row)

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


@ray.remote(max_concurrency=1000)  # type: ignore[call-overload]  # ray's overloads omit actor options
class SenderActor:
    """Hosts many workers. The driver sets it up, runs phases and collects rows in batches."""

    def __init__(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> None:
        self._new_sender(run_id, chain_id, fees, sending)

    def _new_sender(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> None:
        node = ray.get_runtime_context().get_node_id()[:12]
        self.sender = Sender(run_id, node, chain_id, fees, sending)
        self._cpu_base = time.process_time()  # the run's CPU counts from here
        self._cpu_mark = (self._cpu_base, time.monotonic())

    async def renew(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> bool:
        """A fresh sender for the next run of a series, in this same process: the process, its
        imports and its place in the cluster are what a search keeps from trial to trial."""
        self.sender.stop(grace_s=0)  # a phase of the last run still draining sends nothing more
        await self.sender.close()
        self._new_sender(run_id, chain_id, fees, sending)
        return True

    async def setup(self, specs: list[WorkerSpec], endpoints: list[str], mnemonic: str, watcher: ray.actor.ActorHandle) -> list[str]:
        from loadgen.accounts import MnemonicSource, derive_account

        source = MnemonicSource("driver", mnemonic)
        keys = [bytes(derive_account(source, s.key_index).key) for s in specs]
        addresses = await self.sender.add_workers(specs, keys, endpoints)
        self.sender.start_background(watcher)
        return addresses

    async def prepare_phase(self, phase: PhaseSpec, payload: Payload) -> dict[int, int]:
        """Signs ahead; answers each worker's nonce at the phase's start (what a replacement needs)."""
        self.sender.prepare_phase(phase, payload)
        return {w.spec.worker: w.nonce for w in self.sender.workers}

    async def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int = 0) -> dict:
        self.sender.collector.trial = trial
        with profiled(f"sender-{phase.name}"):
            return await self.sender.run_phase(phase, payload, t0, commit_timeout_s)

    async def recover_phase(
        self,
        phase: PhaseSpec,
        payload: Payload,
        t0: float,
        commit_timeout_s: float,
        trial: int,
        bases: dict[int, int],
        known: dict[int, WorkerRecord],
    ) -> dict:
        self.sender.collector.trial = trial
        return await self.sender.recover_phase(phase, payload, t0, commit_timeout_s, bases, known)

    def follow(self, watcher: ray.actor.ActorHandle) -> None:
        """Reads inclusions from another watcher (the one before was lost)."""
        self.sender.follow(watcher)

    async def collect(self) -> tuple[object, SenderStats, list[EndpointEvent]]:
        stats = self.sender.stats()
        self.sender.max_lag_s = self.sender.max_answer_s = 0.0
        # the whole process's CPU (Ray's threads too): what the actor costs, and whether it had any left
        cpu, now = time.process_time(), time.monotonic()
        stats.cpu_s = cpu - self._cpu_base
        stats.max_busy = (cpu - self._cpu_mark[0]) / (now - self._cpu_mark[1]) if now > self._cpu_mark[1] else 0.0
        self._cpu_mark = (cpu, now)
        return self.sender.collector.take(), stats, self.sender.endpoints.take_events()

    async def stop(self, grace_s: float) -> None:
        self.sender.stop(grace_s)

    async def close(self) -> None:
        await self.sender.close()

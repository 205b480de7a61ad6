"""Workers: each a key, a nonce and a schedule, many of them as asyncio tasks in one actor.

A worker sends in every slot of its phase the head of its queue (see loadgen/plan.py). The
head is signed before its slot comes, so signing is not on the sending path, and it keeps its
nonce until the node accepts it: a rejected transaction does not burn a nonce, and re-sending
it means re-sending the very same bytes. Accepted transactions wait in ``inflight`` until the
host's block watcher reports their receipt; one the node has forgotten (it answers null for its
hash) is re-sent as it was, which fills the nonce gap every later transaction of the worker is
stuck behind. After a phase's last slot the actor drains: every accepted transaction is
included or, ``commit_timeout_s`` after the last send, declared dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import ray

from actors.collector import Collector, TxRow
from actors.rpc import RpcClient, RpcError
from actors.signer import SignedTx, Signer
from loadgen.fees import Fees, sign_with
from loadgen.plan import PhaseSpec, WorkerSpec
from loadgen.workloads.base import CallBuilder, Payload

# Answers meaning the node already has this very transaction: accepted after all.
ALREADY_THERE = ("already known", "known transaction", "already imported", "nonce too low")
MAX_RESENDS = 5
PRESIGN_BUDGET_BYTES = 64 * 1024 * 1024  # signed transactions held ahead, per actor
RECENT_INCLUSIONS = 50_000
STOP_GRACE_S = 3.0


@dataclass
class Worker:
    spec: WorkerSpec
    signer: Signer
    rpc: RpcClient
    nonce: int = 0  # the nonce of the head item: the next one the node has to accept
    ahead: deque[SignedTx] = field(default_factory=deque)  # signed items from the head on


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

    def __init__(self, run_id: str, node: str, chain_id: int, fees: Fees) -> None:
        self.node = node
        self.chain_id = chain_id
        self.fees = fees
        self.collector = Collector(run_id, node)
        self.workers: list[Worker] = []
        self.clients: dict[str, RpcClient] = {}
        self.inflight: dict[bytes, TxRow] = {}
        # inclusions of hashes not (yet) in flight: a receipt can beat the node's answer
        self.recent: OrderedDict[bytes, object] = OrderedDict()
        self.stopping = False
        self._stopped_at = math.inf
        self.sent = 0
        self.accepted = 0
        self.scheduled = 0
        self.gaps_recovered = 0
        self.max_lag_s = 0.0
        self._last_send = 0.0
        self._tasks: list[asyncio.Task] = []
        self._payload: Payload | None = None
        self._builder: CallBuilder | None = None
        self._depth = 1
        self.presign_budget_bytes = PRESIGN_BUDGET_BYTES

    # set-up ------------------------------------------------------------------------------
    async def add_workers(self, specs: list[WorkerSpec], keys: list[bytes]) -> list[str]:
        for spec, key in zip(specs, keys, strict=True):
            rpc = self.clients.setdefault(spec.endpoint, RpcClient(spec.endpoint))
            self.workers.append(Worker(spec, Signer(key, self.chain_id), rpc))
        await self.refresh_nonces()
        return [w.signer.address for w in self.workers]

    async def refresh_nonces(self) -> None:
        for url, rpc in self.clients.items():
            mine = [w for w in self.workers if w.spec.endpoint == url]
            answers = await rpc.batch([("eth_getTransactionCount", [w.signer.address, "pending"]) for w in mine])
            for w, answer in zip(mine, answers, strict=True):
                if isinstance(answer, RpcError):
                    raise answer
                w.nonce = int(answer, 16)

    def start_background(self, watcher: ray.actor.ActorHandle, gap_check_s: float) -> None:
        self._tasks = [asyncio.create_task(self._follow(watcher)), asyncio.create_task(self._check_gaps(gap_check_s))]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rpc in self.clients.values():
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

    async def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float) -> dict:
        if self._builder is None or self._payload != payload:
            self.prepare_phase(phase, payload)
        key = (payload.epoch, phase.name)
        await asyncio.gather(*(self._run_worker(w, phase, t0) for w in self.workers))
        self._payload = self._builder = None
        await self._drain(key, commit_timeout_s)
        return {"scheduled": self.scheduled, "sent": self.sent}

    def _sign(self, w: Worker, item: int, nonce: int, gas: int) -> SignedTx:
        assert self._builder is not None, "signed only within a prepared phase"
        call = self._builder.call(w.spec, w.signer.address, item)
        return sign_with(w.signer, self.fees, nonce=nonce, gas=gas, to=call.to, data=call.data, value=call.value)

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
            row = TxRow(
                p.epoch, p.round_id, index, w.spec.pool, phase.name, slot if phase.fixed_slots else item,
                attempt + 1, signed.nonce, w.spec.endpoint, b"", signed.size, t_scheduled,
            )  # fmt: skip
            self.scheduled += 1
            row.t_sent = time.time()
            result = await w.rpc.send_raw(signed.body)
            row.t_acked = time.time()
            self.sent += 1
            self._last_send = row.t_acked
            self.max_lag_s = max(self.max_lag_s, row.t_sent - t_scheduled)
            slot += 1
            if result.ok or any(s in result.result for s in ALREADY_THERE):
                answered = _hash_from(result.result) if result.ok else None
                row.tx_hash = signed.tx_hash if answered is None else answered
                row.raw_body = signed.body
                self._in_flight(row)
                self.accepted += 1
                w.ahead.popleft()
                w.nonce += 1
                item += 1
                attempt = 0
                # keep the queue as deep as it was prepared: sign one more while there is time
                if len(w.ahead) < self._depth and item + len(w.ahead) < items:
                    w.ahead.append(self._sign(w, item + len(w.ahead), w.nonce + len(w.ahead), phase.gas_limit))
                continue
            row.tx_hash = signed.tx_hash
            self.collector.finish(row, "rejected", f"{result.kind}: {result.result}")
            attempt += 1
            if phase.max_retries is not None and attempt > phase.max_retries:
                gave_up = f"gave up: item {item} rejected {attempt} times"
                break
        w.ahead.clear()
        if gave_up:
            # the abandoned chunk's fate is in its rejected rows: no attempt of it was left unsent
            item, attempt = item + 1, 0
        self._unsent(w, phase, p, t0, slot, item, attempt + 1, items, gave_up or "run stopped")

    def _in_flight(self, row: TxRow) -> None:
        inclusion = self.recent.pop(row.tx_hash, None)
        if inclusion is not None:  # the receipt came before the node's answer
            self._record_inclusion(row, inclusion)
            self._finish_included(row)
        else:
            self.inflight[row.tx_hash] = row

    def _unsent(self, w: Worker, phase: PhaseSpec, p: Payload, t0: float, slot: int, item: int, attempt: int, items: int, why: str) -> None:
        """Rows for what was scheduled and never sent, so every scheduled transaction has one.
        ``attempt`` numbers the first of them: a chunk stopped between two of its attempts."""
        index = w.spec.worker
        remaining = (items - slot) if phase.fixed_slots else (items - item)
        for j in range(remaining):
            chunk = slot + j if phase.fixed_slots else item + j
            row = TxRow(
                p.epoch,
                p.round_id,
                index,
                w.spec.pool,
                phase.name,
                chunk,
                attempt if j == 0 and not phase.fixed_slots else 1,
                -1,
                w.spec.endpoint,
                b"",
                0,
                phase.slot_time(t0, index, slot + j),
            )
            self.scheduled += 1
            self.collector.finish(row, "unsent", why)

    async def _sleep_until(self, t: float) -> bool:
        while not self.stopping:
            delay = t - time.time()
            if delay <= 0:
                return True
            await asyncio.sleep(min(delay, 0.5))
        return False

    async def _drain(self, key: tuple, commit_timeout_s: float) -> None:
        def pending() -> list[TxRow]:
            return [r for r in self.inflight.values() if (r.epoch, r.phase) == key]

        deadline = self._last_send + commit_timeout_s
        while pending() and time.time() < deadline:
            if self.stopping:  # a stopped run still gives what it sent a moment to land
                deadline = min(deadline, self._stopped_at + STOP_GRACE_S)
            await asyncio.sleep(0.05)
        for row in pending():
            del self.inflight[row.tx_hash]
            why = "run stopped before inclusion" if self.stopping else f"not in a block {commit_timeout_s:g}s after the last send"
            self.collector.finish(row, "dropped", why)

    def stop(self) -> None:
        self.stopping = True
        self._stopped_at = time.time()

    # inclusion and gaps ---------------------------------------------------------------------
    def _finish_included(self, row: TxRow) -> None:
        self.inflight.pop(row.tx_hash, None)
        self.collector.finish(row, "committed" if row.status == "ok" else "reverted")

    @staticmethod
    def _record_inclusion(row: TxRow, inc) -> None:
        row.block_number = inc.block_number
        row.t_included = inc.t_observed
        row.block_timestamp = inc.block_timestamp_s
        row.gas_used = inc.gas_used
        row.effective_gas_price = inc.effective_gas_price
        row.status = "ok" if inc.status == 1 else "failed"

    async def _follow(self, watcher: ray.actor.ActorHandle) -> None:
        cursor = 0
        while True:
            cursor, inclusions = await watcher.inclusions_since.remote(cursor)
            for inc in inclusions:
                row = self.inflight.get(inc.tx_hash)
                if row is None:
                    self.recent[inc.tx_hash] = inc
                    if len(self.recent) > RECENT_INCLUSIONS:
                        self.recent.popitem(last=False)
                elif row.block_number is None:
                    self._record_inclusion(row, inc)
                    self._finish_included(row)

    async def _check_gaps(self, gap_check_s: float) -> None:
        """Looks up accepted transactions that stay out of blocks; re-sends the ones the node lost."""
        while True:
            await asyncio.sleep(gap_check_s / 2)
            now = time.time()
            old = [
                r for r in self.inflight.values() if r.block_number is None and now - r.t_acked > gap_check_s and r.resends < MAX_RESENDS
            ]
            by_endpoint: dict[str, list[TxRow]] = {}
            for r in old:
                by_endpoint.setdefault(r.endpoint, []).append(r)
            for url, rows in by_endpoint.items():
                rows.sort(key=lambda r: r.nonce)
                try:
                    answers = await self.clients[url].batch([("eth_getTransactionByHash", ["0x" + r.tx_hash.hex()]) for r in rows])
                except RpcError:
                    continue
                for row, answer in zip(rows, answers, strict=True):
                    if row.block_number is not None or isinstance(answer, RpcError):
                        continue
                    if answer is None and row.raw_body is not None:
                        await self._resend(url, row)
                    elif answer is not None and answer.get("blockNumber"):
                        await self._late_receipt(url, row)

    async def _resend(self, url: str, row: TxRow) -> None:
        """The node forgot an accepted transaction: the same bytes fill the nonce gap again."""
        assert row.raw_body is not None, "only rows that kept their bytes are re-sent"
        result = await self.clients[url].send_raw(row.raw_body)
        row.t_acked = time.time()  # the next look-up waits a full gap_check_s again
        if result.ok or any(s in result.result for s in ALREADY_THERE):
            row.resends += 1
            self.gaps_recovered += 1

    async def _late_receipt(self, url: str, row: TxRow) -> None:
        """Mined while its row was not in flight (a retry of bytes a timed-out send had
        delivered): the watcher's report went by, so read the receipt here, observed now."""
        try:
            receipt = await self.clients[url].call("eth_getTransactionReceipt", ["0x" + row.tx_hash.hex()])
        except RpcError:
            return
        if receipt is None or row.block_number is not None:
            return
        row.block_number = int(receipt["blockNumber"], 16)
        row.t_included = time.time()
        row.gas_used = int(receipt["gasUsed"], 16)
        row.effective_gas_price = int(receipt["effectiveGasPrice"], 16) if receipt.get("effectiveGasPrice") else None
        row.status = "ok" if int(receipt["status"], 16) == 1 else "failed"
        self._finish_included(row)

    def stats(self) -> dict:
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "accepted": self.accepted,
            "inflight": len(self.inflight),
            "gaps_recovered": self.gaps_recovered,
            "max_lag_s": self.max_lag_s,
            **{s: self.collector.counts[s] for s in ("committed", "reverted", "rejected", "dropped", "unsent")},
        }


@ray.remote(max_concurrency=1000)  # type: ignore[call-overload]  # ray's overloads omit actor options
class SenderActor:
    """Hosts many workers. The driver sets it up, runs phases and collects rows in batches."""

    def __init__(self, run_id: str, chain_id: int, fees: Fees) -> None:
        node = ray.get_runtime_context().get_node_id()[:12]
        self.sender = Sender(run_id, node, chain_id, fees)

    async def setup(self, specs: list[WorkerSpec], mnemonic: str, watcher: ray.actor.ActorHandle, gap_check_s: float) -> list[str]:
        from loadgen.accounts import MnemonicSource, derive_account

        source = MnemonicSource("driver", mnemonic)
        keys = [bytes(derive_account(source, s.key_index).key) for s in specs]
        addresses = await self.sender.add_workers(specs, keys)
        self.sender.start_background(watcher, gap_check_s)
        return addresses

    async def prepare_phase(self, phase: PhaseSpec, payload: Payload) -> int:
        return self.sender.prepare_phase(phase, payload)

    async def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int = 0) -> dict:
        self.sender.collector.trial = trial
        return await self.sender.run_phase(phase, payload, t0, commit_timeout_s)

    async def collect(self) -> tuple[object, dict]:
        stats = self.sender.stats()
        self.sender.max_lag_s = 0.0
        return self.sender.collector.take(), stats

    async def stop(self) -> None:
        self.sender.stop()

    async def close(self) -> None:
        await self.sender.close()

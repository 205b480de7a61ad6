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
from dataclasses import dataclass

import ray

from actors.collector import Collector, TxRow
from actors.rpc import RpcClient, RpcError, send_raw_body
from actors.signer import SignedTx, Signer
from loadgen import contracts, model
from loadgen.plan import Payload, PhaseSpec, WorkerSpec

# Answers meaning the node already has this very transaction: accepted after all.
ALREADY_THERE = ("already known", "known transaction", "already imported", "nonce too low")
MAX_RESENDS = 5


@dataclass
class Worker:
    spec: WorkerSpec
    signer: Signer
    rpc: RpcClient
    nonce: int = 0  # the next nonce this worker will use


class PayloadBuilder:
    """Calldata for item i of a phase, built where it is sent; pool digests computed once."""

    def __init__(self, payload: Payload) -> None:
        self.p = payload
        self._digests: dict[int, bytes] = {}
        self._copy = (
            contracts.array_copy_calldata(model.random_model(payload.array_size, payload.seed)) if payload.kind == "array-copy" else b""
        )
        self.to = bytes.fromhex(payload.contract.removeprefix("0x"))

    def digest(self, pool: int) -> bytes:
        if pool not in self._digests:
            p = self.p
            self._digests[pool] = model.pool_digest(p.seed, p.epoch, pool, p.model_length, p.chunk_size)
        return self._digests[pool]

    def calldata(self, worker: Worker, item: int) -> bytes:
        p = self.p
        if p.kind == "reveal":
            chunk = model.pool_chunk(p.seed, p.epoch, worker.spec.pool, item, p.model_length, p.chunk_size)
            return contracts.reveal_chunk_calldata(p.round_id, item, chunk)
        if p.kind == "commit":
            return contracts.commit_calldata(p.round_id, model.commitment(self.digest(worker.spec.pool), worker.signer.address))
        return self._copy


class Sender:
    """The workers of one actor, the transactions they have in flight, and their rows."""

    def __init__(self, run_id: str, node: str, chain_id: int, gas_price: int) -> None:
        self.node = node
        self.chain_id = chain_id
        self.gas_price = gas_price
        self.collector = Collector(run_id, node)
        self.workers: list[Worker] = []
        self.clients: dict[str, RpcClient] = {}
        self.inflight: dict[bytes, TxRow] = {}
        self.stopping = False
        self.sent = 0
        self.accepted = 0
        self.scheduled = 0
        self.gaps_recovered = 0
        self.max_lag_s = 0.0
        self._last_send = 0.0
        self._tasks: list[asyncio.Task] = []

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
    async def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float) -> dict:
        builder = PayloadBuilder(payload)
        key = (payload.epoch, phase.name)
        await asyncio.gather(*(self._run_worker(w, phase, builder, t0, key) for w in self.workers))
        await self._drain(key, commit_timeout_s)
        return {"scheduled": self.scheduled, "sent": self.sent}

    def _sign(self, w: Worker, builder: PayloadBuilder, item: int, gas: int) -> SignedTx:
        return w.signer.sign(nonce=w.nonce, gas_price=self.gas_price, gas=gas, to=builder.to, data=builder.calldata(w, item))

    async def _run_worker(self, w: Worker, phase: PhaseSpec, builder: PayloadBuilder, t0: float, key: tuple) -> None:
        index = w.spec.worker
        items = phase.items[index]
        p = builder.p
        slot = item = attempt = 0
        signed: SignedTx | None = None
        body = b""
        gave_up = None
        while item < items and not (phase.fixed_slots and slot >= items):
            if signed is None:
                signed = self._sign(w, builder, item, phase.gas_limit)
                body = send_raw_body(signed.raw)
            t_scheduled = phase.slot_time(t0, index, slot)
            if not await self._sleep_until(t_scheduled):
                break
            row = TxRow(
                p.epoch, p.round_id, index, w.spec.pool, phase.name, slot if phase.fixed_slots else item,
                attempt + 1, signed.nonce, w.spec.endpoint, signed.tx_hash, len(signed.raw), t_scheduled,
            )  # fmt: skip
            row.raw_body = body
            self.scheduled += 1
            self.inflight[signed.tx_hash] = row  # before sending: the receipt may come first
            row.t_sent = time.time()
            result = await w.rpc.send_raw(body)
            row.t_acked = time.time()
            self.sent += 1
            self._last_send = row.t_acked
            self.max_lag_s = max(self.max_lag_s, row.t_sent - t_scheduled)
            slot += 1
            if result.ok or any(s in result.result for s in ALREADY_THERE):
                self.accepted += 1
                w.nonce += 1
                item += 1
                attempt = 0
                signed = None
                if row.block_number is not None:  # included before the answer came back
                    self._finish_included(row)
                continue
            if self.inflight.get(signed.tx_hash) is row:
                del self.inflight[signed.tx_hash]
            self.collector.finish(row, "rejected", f"{result.kind}: {result.result}")
            attempt += 1
            if phase.max_retries is not None and attempt > phase.max_retries:
                gave_up = f"gave up: item {item} rejected {attempt} times"
                break
        self._unsent(w, phase, builder.p, t0, slot, item, items, gave_up or "run stopped")

    def _unsent(self, w: Worker, phase: PhaseSpec, p: Payload, t0: float, slot: int, item: int, items: int, why: str) -> None:
        """Rows for what was scheduled and never sent, so every scheduled transaction has one."""
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
                1,
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
        while pending() and time.time() < deadline and not self.stopping:
            await asyncio.sleep(0.05)
        for row in pending():
            del self.inflight[row.tx_hash]
            why = "run stopped before inclusion" if self.stopping else f"not in a block {commit_timeout_s:g}s after the last send"
            self.collector.finish(row, "dropped", why)

    # inclusion and gaps ---------------------------------------------------------------------
    def _finish_included(self, row: TxRow) -> None:
        self.inflight.pop(row.tx_hash, None)
        self.collector.finish(row, "committed" if row.status == "ok" else "reverted")

    async def _follow(self, watcher: ray.actor.ActorHandle) -> None:
        cursor = 0
        while True:
            cursor, inclusions = await watcher.inclusions_since.remote(cursor)
            for inc in inclusions:
                row = self.inflight.get(inc.tx_hash)
                if row is None or row.block_number is not None:
                    continue
                row.block_number = inc.block_number
                row.t_included = inc.t_observed
                row.block_timestamp = inc.block_timestamp_s
                row.gas_used = inc.gas_used
                row.status = "ok" if inc.status == 1 else "failed"
                if not math.isnan(row.t_acked):
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


@ray.remote(max_concurrency=1000)
class SenderActor:
    """Hosts many workers. The driver sets it up, runs phases and collects rows in batches."""

    def __init__(self, run_id: str, chain_id: int, gas_price: int) -> None:
        node = ray.get_runtime_context().get_node_id()[:12]
        self.sender = Sender(run_id, node, chain_id, gas_price)

    async def setup(self, specs: list[WorkerSpec], mnemonic: str, watcher: ray.actor.ActorHandle, gap_check_s: float) -> list[str]:
        from loadgen.accounts import MnemonicSource, derive_account

        source = MnemonicSource("driver", mnemonic)
        keys = [bytes(derive_account(source, s.key_index).key) for s in specs]
        addresses = await self.sender.add_workers(specs, keys)
        self.sender.start_background(watcher, gap_check_s)
        return addresses

    async def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int = 0) -> dict:
        self.sender.collector.trial = trial
        return await self.sender.run_phase(phase, payload, t0, commit_timeout_s)

    async def collect(self) -> tuple[object, dict]:
        stats = self.sender.stats()
        self.sender.max_lag_s = 0.0
        return self.sender.collector.take(), stats

    async def node(self) -> str:
        return self.sender.node

    async def stop(self) -> None:
        self.sender.stopping = True

    async def close(self) -> None:
        await self.sender.close()

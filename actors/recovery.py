"""Picking a phase up where a lost sender actor left it.

A worker's transactions are signed deterministically (RFC 6979): item i of a phase, with nonce
base + i, is the same bytes, and the same hash, whoever signs it. So the replacement of a lost
actor signs the items whose nonces the chain has handed out since the phase began, and asks the
node about each hash: in a block (its row is rebuilt from the receipt), in the pool (followed as
in flight), or unknown (sent again, the same bytes, before anything new). Rows the driver had
already stored are not rebuilt. ``Resume`` says where each worker goes on from.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.blocks import Inclusion
from actors.collector import TxRow
from actors.rpc import RpcClient, RpcError
from loadgen.engine.ledger import WorkerRecord
from loadgen.engine.plan import PhaseSpec
from loadgen.workloads.base import Payload

if TYPE_CHECKING:
    from actors.sender import Sender, Worker

LEAD_S = 0.2  # the replacement's first slot is at least this far ahead: time to set itself up


@dataclass(frozen=True)
class Resume:
    base: int  # the worker's nonce when the phase began
    slot: int  # the slot it sends in next
    new: int  # the first item it never sent
    retry: tuple[int, ...] = ()  # items below ``new`` the chain does not know: sent again first
    attempts: dict[int, int] = field(default_factory=dict)  # retried item → its attempts stored already


@dataclass(frozen=True)
class Found:
    inclusion: Inclusion | None  # in a block
    pending: bool  # in a node's pool, not yet in a block


async def look_up(rpc: RpcClient, hashes: list[str], batch: int = 200) -> list[Found | None]:
    """What the node knows of each hash (None: nothing), ``batch`` hashes a request."""
    if len(hashes) > batch:
        return [f for i in range(0, len(hashes), batch) for f in await look_up(rpc, hashes[i : i + batch], batch)]
    if not hashes:
        return []
    now = time.time()
    receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    unknown = [h for h, r in zip(hashes, receipts, strict=True) if r is None or isinstance(r, RpcError)]
    pooled = await rpc.batch([("eth_getTransactionByHash", [h]) for h in unknown]) if unknown else []
    in_pool = {h for h, tx in zip(unknown, pooled, strict=True) if isinstance(tx, dict)}
    found: list[Found | None] = []
    for h, receipt in zip(hashes, receipts, strict=True):
        if isinstance(receipt, dict):
            found.append(Found(Inclusion.of(receipt, h, now, None), False))
        else:
            found.append(Found(None, True) if h in in_pool else None)
    return found


def next_slot(phase: PhaseSpec, t0: float, worker: int, from_slot: int, now: float) -> int:
    """The first slot from ``from_slot`` on that falls after ``now`` (plus a set-up lead)."""
    slot = from_slot
    while slot < phase.worst_case_slots(worker) and phase.slot_time(t0, worker, slot) < now + LEAD_S:
        slot += 1
    return slot


class Recovery:
    """Rebuilds a lost actor's worker from the chain, for the sender that takes it over."""

    def __init__(self, sender: Sender) -> None:
        self.s = sender

    async def rebuild(self, w: Worker, phase: PhaseSpec, p: Payload, t0: float, base: int, record: WorkerRecord) -> Resume:
        index = w.spec.worker
        sent = min(max(w.nonce - base, 0), phase.items[index])  # w.nonce: the node's pending count, read at set-up
        candidates = list(itertools.takewhile(lambda i: i < sent, (n - base for n in record.included.missing_from(base))))
        signed = {i: self.s.presigner.sign(w, i, base + i, phase.gas_limit) for i in candidates}
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
            row = self.s._row(w, phase, p, chunk, record.attempts(chunk) + 1, signed[i], phase.slot_time(t0, index, chunk))
            row.recovered, row.error = True, "rebuilt from the chain: its sender actor was lost (sent at a time not known)"
            row.tx_hash, row.raw_body, row.t_checked = signed[i].tx_hash, signed[i].body, now
            self.s.recovered += 1
            if f.inclusion is not None:
                row.include(f.inclusion)
                self.s._finish_included(row)
            else:
                self.s._in_flight(row)
        slot = next_slot(phase, t0, index, used if phase.fixed_slots else 0, now)
        if phase.fixed_slots:  # slots before it without a row: lost with the actor, or passed while none was there
            lost = list(itertools.takewhile(lambda s: s < slot, free))
            for s in lost:
                row = TxRow(
                    p.epoch, p.round_id, index, w.spec.pool, phase.name, s, 1, -1, w.rpc.url, b"", 0, phase.slot_time(t0, index, s)
                )  # fmt: skip
                row.recovered = True
                self.s.scheduled += 1
                self.s.recovered += 1
                self.s.collector.finish(row, "unsent", "its sender actor was lost: nothing of it reached the chain")
        # paced phases number attempts per item: those stored go on from where they were
        stored = itertools.chain(retry, range(sent, record.chunks.floor), (c for c in record.chunks.above if c >= sent))
        attempts = {i: record.attempts(i) for i in stored} if not phase.fixed_slots else {}
        return Resume(base, slot, sent, tuple(retry), attempts)

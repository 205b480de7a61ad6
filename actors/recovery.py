"""Picking a phase up where a lost sender actor left it.

A worker's transactions are signed deterministically (RFC 6979): item i of a phase, with nonce
base + i, is the same bytes, and the same hash, whoever signs it. So the replacement of a lost
actor signs the items whose nonces the chain has handed out since the phase began, and asks the
node about each hash: in a block (its row is rebuilt from the receipt), in the pool (followed as
in flight), or unknown (sent again, the same bytes, before anything new). Rows the driver had
already stored are not rebuilt. ``Resume`` says where each worker goes on from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from actors.rpc import RpcClient, RpcError
from actors.watcher import Inclusion
from loadgen.engine.plan import PhaseSpec

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

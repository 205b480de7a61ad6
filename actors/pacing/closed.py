"""Closed pacing: the worker waits for the node's answer to each send before its next slot, as
a client that waits does (today's tools); a slow node then slows the offered load down."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from loadgen.engine.plan import PhaseSpec

if TYPE_CHECKING:
    from actors.sender import Sender, Worker


class ClosedPacing:
    def __init__(self, sender: Sender) -> None:
        self.s = sender

    async def run(self, w: Worker, phase: PhaseSpec, t0: float) -> None:
        index = w.spec.worker
        items = phase.items[index]
        p = self.s.presigner.payload
        assert p is not None, "run_phase prepared the phase"
        slot = item = attempt = 0
        gave_up = None
        while item < items and not (phase.fixed_slots and slot >= items):
            if not w.ahead:
                w.ahead.append(self.s.presigner.sign(w, item, w.nonce, phase.gas_limit))
            signed = w.ahead[0]
            t_scheduled = phase.slot_time(t0, index, slot)
            if not await self.s._sleep_until(t_scheduled):
                break
            self.s._route(w)
            row = self.s._row(w, phase, p, slot if phase.fixed_slots else item, attempt + 1, signed, t_scheduled)
            result = await w.rpc.send_raw(signed.body, partial(self.s._stamp, row))
            self.s._answered(row)
            slot += 1
            if self.s._accepted(row, signed, result):
                w.ahead.popleft()
                w.nonce += 1
                item += 1
                attempt = 0
                self.s.presigner.top_up(w, phase, item, w.nonce)
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
        self.s._unsent(w, phase, p, t0, slot, entries, gave_up or "run stopped")

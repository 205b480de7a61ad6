"""Open pacing (the default): a transaction goes out at its slot whether or not the node has
answered the worker's previous ones (see actors/sender.py's docstring)."""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from actors.collector import TxRow
from actors.recovery import Resume
from loadgen.chains.signer import SignedTx
from loadgen.engine.plan import PhaseSpec

if TYPE_CHECKING:
    from actors.sender import Sender, Worker


@dataclass
class _Answers:
    """An open-mode worker's sends in flight to the node, and what their answers asked for."""

    retry: list[tuple[int, int]] = field(default_factory=list)  # heap of (nonce, item) refused, to send again
    attempts: dict[int, int] = field(default_factory=dict)  # item → sends so far
    unaccepted: dict[int, SignedTx] = field(default_factory=dict)  # item → its bytes, until accepted
    unanswered: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    gave_up: str | None = None


class OpenPacing:
    def __init__(self, sender: Sender) -> None:
        self.s = sender

    async def run(self, w: Worker, phase: PhaseSpec, t0: float, resume: Resume | None = None) -> None:
        """Sends at every slot without waiting for the node's answers (see the module's docstring);
        from where ``resume`` says when it picks up a lost actor's worker."""
        index = w.spec.worker
        items = phase.items[index]
        p = self.s.presigner.payload
        assert p is not None, "run_phase prepared the phase"
        if w.stuck is not None:
            self.s._unsent(w, phase, p, t0, 0, [(i, 1) for i in range(items)], w.stuck)
            return
        state = _Answers()
        sends: set[asyncio.Task] = set()
        base, slot, new = w.nonce, 0, 0  # nonce of item 0; slots used; new items sent
        if resume is not None:
            base, slot, new = resume.base, resume.slot, resume.new
            w.ahead.clear()
            for item in resume.retry:
                state.unaccepted[item] = self.s.presigner.sign(w, item, base + item, phase.gas_limit)
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
            sleeping = await self.s._sleep_until(t_scheduled)
            while sleeping and state.unanswered >= self.s.max_unanswered and not self.s.stopping:
                state.changed.clear()  # at the bound: this slot waits (and shows as lag)
                await state.changed.wait()
            if not sleeping or self.s.stopping or state.gave_up is not None:
                break
            # chosen at the slot, not before it: a refusal answered meanwhile goes first
            if state.retry:
                item = heapq.heappop(state.retry)[1]
                signed = state.unaccepted[item]
            else:
                item, new = new, new + 1
                signed = w.ahead.popleft() if w.ahead else self.s.presigner.sign(w, item, base + item, phase.gas_limit)
                state.unaccepted[item] = signed
            attempt = state.attempts.get(item, 0) + 1
            state.attempts[item] = attempt
            self.s._route(w)
            row = self.s._row(w, phase, p, slot if phase.fixed_slots else item, attempt, signed, t_scheduled)
            slot += 1
            state.unanswered += 1
            task = asyncio.create_task(self._send(w, phase, row, item, signed, state))
            sends.add(task)
            task.add_done_callback(sends.discard)
            self.s.presigner.top_up(w, phase, new, base + new)
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
        self.s._unsent(w, phase, p, t0, slot, entries, why)
        if state.unaccepted:
            first = min(state.unaccepted.values(), key=lambda s: s.nonce)
            later = new - 1 - (first.nonce - base)
            if later > 0:
                w.stuck_nonce = first.nonce
                where = f"{phase.name}, epoch {p.epoch}"
                w.stuck = f"nonce {first.nonce} was never accepted ({where}); {later} later transaction(s) wait behind it"
            else:
                w.nonce = first.nonce  # nothing was sent behind it: the nonce is free for what comes next

    async def _send(self, w: Worker, phase: PhaseSpec, row: TxRow, item: int, signed: SignedTx, state: _Answers) -> None:
        try:
            result = await w.rpc.send_raw(signed.body, partial(self.s._stamp, row))
            self.s._answered(row)
            if self.s._accepted(row, signed, result):
                del state.unaccepted[item]
                state.attempts.pop(item, None)  # kept only while an item may be sent again: a long phase stays small
            elif phase.max_retries is not None and state.attempts[item] > phase.max_retries:
                state.gave_up = f"gave up: item {item} rejected {state.attempts[item]} times"
            else:
                heapq.heappush(state.retry, (signed.nonce, item))
        finally:
            state.unanswered -= 1
            state.changed.set()

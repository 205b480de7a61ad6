"""Signing ahead: a phase's transactions are signed before their slots come, as many as the
actor's memory budget holds, so that signing stays off the sending path; each send tops its
worker's queue up again while there is time before the next slot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.chains.fees import Fees
from loadgen.chains.signer import SignedTx, sign_with
from loadgen.engine.plan import PhaseSpec
from loadgen.workloads.base import CallBuilder, Payload

if TYPE_CHECKING:
    from actors.sender import Worker

PRESIGN_BUDGET_BYTES = 64 * 1024 * 1024  # signed transactions held ahead, per actor


class Presigner:
    def __init__(self, fees: Fees, budget_bytes: int = PRESIGN_BUDGET_BYTES) -> None:
        self.fees = fees
        self.budget_bytes = budget_bytes
        self.payload: Payload | None = None  # the phase's, while one is prepared or running
        self._builder: CallBuilder | None = None
        self._depth = 1

    def prepared_for(self, payload: Payload) -> bool:
        return self._builder is not None and self.payload == payload

    def start(self, payload: Payload) -> None:
        """Signs the phase's items as they go (a replacement actor starts late already)."""
        self.payload, self._builder = payload, payload.builder()

    def done(self) -> None:
        self.payload = self._builder = None

    def prepare(self, workers: list[Worker], phase: PhaseSpec, payload: Payload) -> int:
        """Signs each worker's first transactions before the phase's t0 is set: as many as fit
        the budget. Answers how many."""
        self.start(payload)
        assert self._builder is not None
        # every transaction of a phase is about as large as its first: one estimate serves all
        size = len(self._builder.call(workers[0].spec, workers[0].signer.address, 0).data) + 200 if workers else 1
        depth = max(1, self.budget_bytes // (2 * size * max(len(workers), 1)))  # hex: 2 bytes a byte
        signed = 0
        for w in workers:
            w.ahead.clear()
            for item in range(min(depth, phase.items[w.spec.worker])):
                w.ahead.append(self.sign(w, item, w.nonce + item, phase.gas_limit))
                signed += 1
        self._depth = depth
        return signed

    def sign(self, w: Worker, item: int, nonce: int, gas: int) -> SignedTx:
        assert self._builder is not None, "signed only within a prepared phase"
        call = self._builder.call(w.spec, w.signer.address, item)
        return sign_with(w.signer, self.fees, nonce=nonce, gas=gas, to=call.to, data=call.data, value=call.value)

    def top_up(self, w: Worker, phase: PhaseSpec, item: int, nonce: int) -> None:
        """Keeps the signed queue (from ``item``, whose nonce is ``nonce``) as deep as it was
        prepared: one more signed while there is time before the next slot."""
        if len(w.ahead) < self._depth and item + len(w.ahead) < phase.items[w.spec.worker]:
            w.ahead.append(self.sign(w, item + len(w.ahead), nonce + len(w.ahead), phase.gas_limit))

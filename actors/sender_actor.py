"""The sender as an actor the driver places (a Ray actor, or an object of loadgen's own process):
hosts many workers as asyncio tasks; the driver sets it up, runs phases and collects its rows in
batches."""

from __future__ import annotations

import time

from actors.collector import Collector
from actors.endpoints import EndpointEvent
from actors.profiling import profiled
from actors.sender import Sender
from actors.settling import InclusionFeed
from actors.stats import SenderStats
from loadgen.chains.fees import Fees
from loadgen.engine.ledger import WorkerRecord
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.engine.sending import Sending
from loadgen.workloads.base import Payload


class SenderActor:
    """Hosts many workers. The driver sets it up, runs phases and collects rows in batches."""

    def __init__(self, node: str, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> None:
        Collector.warm_up()  # before any slot: never in the middle of the sending
        self.node = node  # the host, as the rows name it
        self._new_sender(run_id, chain_id, fees, sending)

    def _new_sender(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> None:
        self.sender = Sender(run_id, self.node, chain_id, fees, sending)
        self._cpu_base = time.process_time()  # the run's CPU counts from here
        self._cpu_mark = (self._cpu_base, time.monotonic())

    async def renew(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> bool:
        """A fresh sender for the next run of a series, in this same process: the process, its
        imports and its place in the cluster are what a search keeps from trial to trial."""
        self.sender.stop(grace_s=0)  # a phase of the last run still draining sends nothing more
        await self.sender.close()
        self._new_sender(run_id, chain_id, fees, sending)
        return True

    async def setup(self, specs: list[WorkerSpec], endpoints: list[str], mnemonic: str, feed: InclusionFeed) -> list[str]:
        from loadgen.config.accounts import MnemonicSource, derive_account

        source = MnemonicSource("driver", mnemonic)
        keys = [bytes(derive_account(source, s.key_index).key) for s in specs]
        addresses = await self.sender.add_workers(specs, keys, endpoints)
        self.sender.start_background(feed)
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

    def follow(self, feed: InclusionFeed) -> None:
        """Reads inclusions from another watcher (the one before was lost)."""
        self.sender.follow(feed)

    async def collect(self) -> tuple[object, SenderStats, list[EndpointEvent]]:
        stats = self.sender.stats()
        self.sender.max_lag_s = self.sender.max_answer_s = 0.0
        # the whole process's CPU (Ray's threads too; in loadgen's own process, the driver's too: they share its
        # core): what the actor costs, and whether it had any left
        cpu, now = time.process_time(), time.monotonic()
        stats.cpu_s = cpu - self._cpu_base
        stats.max_busy = (cpu - self._cpu_mark[0]) / (now - self._cpu_mark[1]) if now > self._cpu_mark[1] else 0.0
        self._cpu_mark = (cpu, now)
        return self.sender.collector.take(), stats, self.sender.endpoints.take_events()

    async def stop(self, grace_s: float) -> None:
        self.sender.stop(grace_s)

    async def close(self) -> None:
        await self.sender.close()

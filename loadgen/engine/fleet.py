"""The sender fleet: the actors that host the workers, one block watcher per node, and the
batches of rows and blocks they hand back. The host (Ray, or loadgen's own process) places them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import cast

import pyarrow as pa

from actors.endpoints import EndpointEvent
from actors.stats import SenderStats
from loadgen.chains.fees import Fees
from loadgen.common.address import checksummed
from loadgen.config.accounts import MnemonicSource
from loadgen.engine.hosting.base import Handle, Host, Ref
from loadgen.engine.ledger import PhaseLedger
from loadgen.engine.plan import PhaseSpec, RunPlan
from loadgen.engine.sending import Sending
from loadgen.engine.watchers import NodeWatchers, WatcherNews
from loadgen.workloads.base import Payload

STOP_GRACE_S = 3.0  # an interrupted or failed run: what was sent gets this long to land


@dataclass
class Collected:
    """One collection round: the final rows, the actors' counters summed, the endpoints that
    went down or came back (as each actor and watcher saw it), and the watchers' news."""

    tables: list[pa.Table]
    totals: SenderStats
    events: list[EndpointEvent]
    watched: WatcherNews


@dataclass(frozen=True)
class _PhaseRun:
    """The phase the actors run, as a replacement actor needs it."""

    phase: PhaseSpec
    payload: Payload
    t0: float
    commit_timeout_s: float
    trial: int


class SenderFleet:
    def __init__(self, host: Host, run_id: str, chain_id: int, fees: Fees, sending: Sending, spares: int = 1) -> None:
        self.host = host
        self.run_id = run_id
        self.chain_id = chain_id
        self.fees = fees
        self.sending = sending
        self.spares = spares
        self.actors: list[Handle] = []
        # node id → sender processes started and idle: a lost actor's successor takes one
        # instead of starting a process (2 s on a quiet machine, tens of seconds on a busy one,
        # while the lost actor's slots wait)
        self._spare: dict[str, list[Handle]] = {}
        self._watchers = NodeWatchers(host, sending, [], [])
        self.slots: list[str] = []  # actor → the node it lives on
        self.endpoints: list[str] = []
        self._addresses: list[str] | None = None  # the workers', once ``ready`` set them up
        self._new_run()

    def _new_run(self) -> None:
        self.replaced = 0  # sender actors lost and replaced
        self._phase_refs: list[Ref] = []
        self._phase: _PhaseRun | None = None
        self._bases: dict[int, int] = {}
        self._stats_of: dict[int, SenderStats] = {}  # actor → its counters at the last collection
        self._lost_totals = SenderStats()  # the counters of actors lost and replaced

    def renew(self, run_id: str, fees: Fees) -> None:
        """Readies the fleet for the next run of a series: each actor gets a fresh sender, and
        what the watchers saw between the runs is nobody's."""
        self.run_id, self.fees = run_id, fees
        self._new_run()
        self._follow(self._watchers.take().replaced)
        renewed = self.host.each([a.renew.remote(run_id, self.chain_id, fees, self.sending) for a in self.actors])
        for a in [a for a, ok in enumerate(renewed) if ok is None]:  # lost since the last run: start sets the new one up
            self._respawn(a)
        for node_id, spares in self._spare.items():
            answers = self.host.each([s.renew.remote(run_id, self.chain_id, fees, self.sending) for s in spares])
            self._spare[node_id] = [s for s, ok in zip(spares, answers, strict=True) if ok is not None]
            self._stock(node_id)

    def start(self, plan: RunPlan, endpoints: list[str], source: MnemonicSource) -> None:
        """Places the actors (one watcher per node they use) without waiting for their
        processes, which start while the driver deploys and opens the round; ``ready`` sets the
        workers up. Actors already placed as this plan needs are kept (a series of runs)."""
        n_actors = max(w.actor for w in plan.workers) + 1
        slots = self.host.node_slots(n_actors)
        if (slots, endpoints) != (self.slots, self.endpoints):
            self.shutdown()
            self.slots, self.endpoints = slots, endpoints
            self._watchers = NodeWatchers(self.host, self.sending, endpoints, sorted(set(slots), key=slots.index))
            self.actors = [self._new_actor(self.slots[a]) for a in range(n_actors)]
            for node_id in self.watchers:
                self._stock(node_id)
        self.plan, self.source = plan, source
        self._addresses = None

    def ready(self) -> list[str]:
        """Waits for what ``start`` placed and sets the workers up, once a run: answers their
        addresses, as the actors derived them."""
        if self._addresses is None:
            self._watchers.started()  # the senders follow their node's watcher from the start
            answers: list[list[str]] = self.host.get(self._setups(range(len(self.actors))))
            addresses = [""] * len(self.plan.workers)
            for a, got in enumerate(answers):
                for spec, address in zip(self.plan.workers_of(a), got, strict=True):
                    addresses[spec.worker] = checksummed(address)
            self._addresses = addresses
        return self._addresses

    @property
    def watchers(self) -> dict[str, Handle]:
        """Node id → the node's block watcher."""
        return self._watchers.by_node

    def _new_actor(self, node_id: str) -> Handle:
        return self.host.sender(node_id, self.run_id, self.chain_id, self.fees, self.sending)

    def _spare_on(self, node_id: str) -> Handle | None:
        """One of the node's spares, started (one still starting is further on than a new
        process), or None when none is left alive."""
        spares = self._spare.get(node_id, [])
        while spares:
            spare = spares.pop(0)
            if self.host.started(spare):
                return spare
        return None

    def _stock(self, node_id: str) -> None:
        """Starts the node's spare sender processes, without waiting for them."""
        spares = self._spare.setdefault(node_id, [])
        spares += [self._new_actor(node_id) for _ in range(self.spares - len(spares))]

    def _setups(self, actors: range | list[int]) -> list[Ref]:
        phrase = self.host.put(self.source.phrase())
        return [
            self.actors[a].setup.remote(self.plan.workers_of(a), self.endpoints, phrase, self.host.feed(self.watchers[self.slots[a]]))
            for a in actors
        ]

    @property
    def actor_ids(self) -> list[str]:
        return [self.host.actor_id(a) for a in self.actors]

    @property
    def nodes(self) -> int:
        return len(self.watchers)

    def prepare(self, phase: PhaseSpec, payload: Payload) -> list[int]:
        """Signs ahead before the phase's start time is set. An actor lost since the last phase
        is replaced first (nothing of this phase to rebuild); answers which were."""
        answers: list[dict[int, int] | None] = self.host.each([a.prepare_phase.remote(phase, payload) for a in self.actors])
        revived = [a for a, got in enumerate(answers) if got is None]
        for a in revived:
            self._revive(a)
            answers[a] = cast(dict[int, int], self.host.get(self.actors[a].prepare_phase.remote(phase, payload)))
        self._bases = {w: nonce for got in answers if got is not None for w, nonce in got.items()}  # nonces at the phase's start
        return revived

    @property
    def bases(self) -> dict[int, int]:
        """Each worker's nonce at the start of the phase last prepared."""
        return dict(self._bases)

    def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int) -> list[Ref]:
        self._phase = _PhaseRun(phase, payload, t0, commit_timeout_s, trial)
        self._phase_refs = [a.run_phase.remote(phase, payload, t0, commit_timeout_s, trial) for a in self.actors]
        return list(self._phase_refs)

    def lost(self, done: list[Ref]) -> list[int]:
        """The actors whose phase ended because the actor died (its process, or its node)."""
        return [self._phase_refs.index(ref) for ref in done if self.host.died(ref)]

    def replace(self, a: int, ledger: PhaseLedger) -> tuple[Ref, bool]:
        """A new actor for actor ``a``'s workers, on its node if that is alive (else on another),
        which rebuilds from the chain what ``a`` did in the phase and sends the rest. Answers its
        phase and whether it was a spare (else a process had to start)."""
        assert self._phase is not None, "replaced only while a phase runs"
        spare = self._revive(a)
        workers = [w.worker for w in self.plan.workers_of(a)]
        p = self._phase
        ref: Ref = self.actors[a].recover_phase.remote(
            p.phase, p.payload, p.t0, p.commit_timeout_s, p.trial, {w: self._bases[w] for w in workers}, ledger.of(workers)
        )
        self._phase_refs[a] = ref
        return ref, spare

    def _revive(self, a: int) -> bool:
        """A new actor ``a`` with the same workers, set up; its lost predecessor's counters are
        kept so that the run's totals do not lose them. Answers whether it was a spare."""
        spare = self._respawn(a)
        self.host.get(self._setups([a]))
        return spare

    def _respawn(self, a: int) -> bool:
        """A new actor ``a``, on its node if that is alive (else on another), not set up yet: a
        spare if the node has one (answers True), else a new process."""
        if a in self._stats_of:
            self._lost_totals += self._stats_of.pop(a).kept()
        alive = self.host.node_slots(None)
        if self.slots[a] not in alive:
            self.slots[a] = alive[a % len(alive)]
        self._watchers.on(self.slots[a])
        with contextlib.suppress(Exception):
            self.host.kill(self.actors[a])
        spare = self._spare_on(self.slots[a])
        self.actors[a] = spare or self._new_actor(self.slots[a])
        self._stock(self.slots[a])
        self.replaced += 1
        return spare is not None

    def collect(self) -> Collected:
        """What every actor and watcher has to hand over; a lost one hands over nothing (the run
        replaces it: a sender through ``replace``, a watcher here, from the block after the last
        one handed over)."""
        tables: list[pa.Table] = []
        events: list[EndpointEvent] = []
        totals = self._lost_totals
        for a, answer in enumerate(self.host.each([a.collect.remote() for a in self.actors])):
            if answer is None:
                continue
            table, stats, seen = answer
            self._stats_of[a] = stats
            if table is not None:
                tables.append(table)
            totals += stats
            events += seen
        news = self._watchers.take()
        self._follow(news.replaced)
        return Collected(tables, totals, sorted(events + news.events, key=lambda e: e.t), news)

    def _follow(self, node_ids: list[str]) -> None:
        """The senders of nodes whose watcher was replaced follow the new one."""
        for node_id in node_ids:
            self.host.each(
                [self.actors[a].follow.remote(self.host.feed(self.watchers[node_id])) for a, n in enumerate(self.slots) if n == node_id]
            )

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Workers stop at their next slot; what they had sent gets ``grace_s`` to land."""
        with contextlib.suppress(Exception):
            self.host.get([a.stop.remote(grace_s) for a in self.actors], timeout=10)
            self.host.wait(self._phase_refs, grace_s + 12)

    def idle(self) -> None:
        """Between the runs of a series: the senders stop everything they do on their own (gap
        checks re-sending what a node lost, following the watcher), so nothing of this run
        reaches the chain while the next one sets up. The processes stay."""
        with contextlib.suppress(Exception):
            self.host.get([a.close.remote() for a in self.actors], timeout=10)

    def shutdown(self) -> None:
        self.idle()
        self._watchers.stop()
        spares = [s for node in self._spare.values() for s in node]
        for handle in self.actors + spares:
            with contextlib.suppress(Exception):
                self.host.kill(handle)
        self.actors, self.slots, self._spare = [], [], {}

"""The sender fleet: the Ray actors that host the workers, one block watcher per Ray node, and
the batches of rows and blocks they hand back. This is where the driver starts ``actors/``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from web3 import Web3

from actors.blocks import BlockRow
from actors.endpoints import EndpointEvent, in_turn
from actors.sender_actor import SenderActor
from actors.stats import SenderStats, WatcherLag
from actors.watcher import Reorg, WatcherActor
from loadgen.accounts import MnemonicSource
from loadgen.chains.fees import Fees
from loadgen.engine.ledger import PhaseLedger
from loadgen.engine.plan import PhaseSpec, RunPlan
from loadgen.engine.sending import Sending
from loadgen.workloads.base import Payload

WATCH_POLL_S = 0.05
STOP_GRACE_S = 3.0  # an interrupted or failed run: what was sent gets this long to land


def node_slots(n_wanted: int | None) -> list[str]:
    """Node ids for the actors: as many per node as it has CPUs, interleaved across nodes."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    per_node = [[n["NodeID"]] * max(int(n["Resources"].get("CPU", 1)), 1) for n in nodes]
    width = max(len(g) for g in per_node)
    padded = [g + [""] * (width - len(g)) for g in per_node]
    slots = [nid for group in zip(*padded, strict=True) for nid in group if nid]
    if n_wanted is None:
        return slots
    return [slots[i % len(slots)] for i in range(n_wanted)]


@dataclass
class Collected:
    """One collection round: the final rows, the actors' counters summed, the new blocks, and
    the endpoints that went down or came back (as each actor and watcher saw it)."""

    tables: list[pa.Table]
    totals: SenderStats
    lag: WatcherLag  # the slowest watcher's: its senders decide last
    blocks: list[BlockRow] = field(default_factory=list)
    events: list[EndpointEvent] = field(default_factory=list)
    reorgs: list[Reorg] = field(default_factory=list)
    receipts: dict[str, str] = field(default_factory=dict)  # endpoint a watcher reads → how it reads receipts


@dataclass(frozen=True)
class _PhaseRun:
    """The phase the actors run, as a replacement actor needs it."""

    phase: PhaseSpec
    payload: Payload
    t0: float
    commit_timeout_s: float
    trial: int


def _each(refs: list[ray.ObjectRef]) -> list[Any]:
    """Each answer, or None where the actor is lost."""
    answers = []
    for ref in refs:
        try:
            answers.append(ray.get(ref))
        except ray.exceptions.RayActorError:
            answers.append(None)
    return answers


class SenderFleet:
    def __init__(self, run_id: str, chain_id: int, fees: Fees, sending: Sending, spares: int = 1) -> None:
        self.run_id = run_id
        self.chain_id = chain_id
        self.fees = fees
        self.sending = sending
        self.spares = spares
        self.actors: list[ray.actor.ActorHandle] = []
        # Ray node id → sender processes started and idle: a lost actor's successor takes one
        # instead of starting a process (2 s on a quiet machine, tens of seconds on a busy one,
        # while the lost actor's slots wait)
        self._spare: dict[str, list[ray.actor.ActorHandle]] = {}
        self.watchers: dict[str, ray.actor.ActorHandle] = {}  # Ray node id → the node's block watcher
        self.slots: list[str] = []  # actor → the Ray node it lives on
        self.endpoints: list[str] = []
        self._watching: list[ray.ObjectRef] = []  # the watchers' starts, placed by ``start``
        self._addresses: list[str] | None = None  # the workers', once ``ready`` set them up
        self._handed: dict[str, int] = {}  # watcher's node → the last block it handed over
        self._last_block: int | None = None  # the newest block handed to the driver
        self._new_run()

    def _new_run(self) -> None:
        self.replaced = 0  # sender actors lost and replaced
        self._phase_refs: list[ray.ObjectRef] = []
        self._phase: _PhaseRun | None = None
        self._bases: dict[int, int] = {}
        self._stats_of: dict[int, SenderStats] = {}  # actor → its counters at the last collection
        self._lost_totals = SenderStats()  # the counters of actors lost and replaced

    def renew(self, run_id: str, fees: Fees) -> None:
        """Readies the fleet for the next run of a series: each actor gets a fresh sender, and
        what the watchers saw between the runs is nobody's."""
        self.run_id, self.fees = run_id, fees
        self._new_run()
        for node_id, report in zip(list(self.watchers), _each([w.take.remote() for w in self.watchers.values()]), strict=True):
            if report is None:  # lost since the last run
                self._replace_watcher(node_id)
            elif report.blocks:
                self._handed[node_id] = report.blocks[-1].number
                self._last_block = max(self._last_block or 0, report.blocks[-1].number)
        renewed = _each([a.renew.remote(run_id, self.chain_id, fees, self.sending) for a in self.actors])
        for a in [a for a, ok in enumerate(renewed) if ok is None]:  # lost since the last run: start sets the new one up
            self._respawn(a)
        for node_id, spares in self._spare.items():
            answers = _each([s.renew.remote(run_id, self.chain_id, fees, self.sending) for s in spares])
            self._spare[node_id] = [s for s, ok in zip(spares, answers, strict=True) if ok is not None]
            self._stock(node_id)

    def start(self, plan: RunPlan, endpoints: list[str], source: MnemonicSource) -> None:
        """Places the actors (one watcher per Ray node they use) without waiting for their
        processes, which start while the driver deploys and opens the round; ``ready`` sets the
        workers up. Actors already placed as this plan needs are kept (a series of runs)."""
        n_actors = max(w.actor for w in plan.workers) + 1
        slots = node_slots(n_actors)
        if (slots, endpoints) != (self.slots, self.endpoints):
            self.shutdown()
            self.slots, self.endpoints = slots, endpoints
            self.watchers, self._handed, self._last_block = {}, {}, None
            for node_id in sorted(set(self.slots), key=self.slots.index):
                self.watchers[node_id] = self._new_watcher(node_id)
            self._watching = [w.start.remote() for w in self.watchers.values()]
            self.actors = [self._new_actor(self.slots[a]) for a in range(n_actors)]
            for node_id in self.watchers:
                self._stock(node_id)
        self.plan, self.source = plan, source
        self._addresses = None

    def ready(self) -> list[str]:
        """Waits for what ``start`` placed and sets the workers up, once a run: answers their
        addresses, as the actors derived them."""
        if self._addresses is None:
            ray.get(self._watching)  # the senders follow their node's watcher from the start
            self._watching = []
            answers: list[list[str]] = ray.get(self._setups(range(len(self.actors))))
            addresses = [""] * len(self.plan.workers)
            for a, got in enumerate(answers):
                for spec, address in zip(self.plan.workers_of(a), got, strict=True):
                    addresses[spec.worker] = Web3.to_checksum_address(address)
            self._addresses = addresses
        return self._addresses

    def _new_watcher(self, node_id: str) -> ray.actor.ActorHandle:
        # its own endpoint first; the others, in turn, are where it goes when that one stops
        # answering: the watch endpoints, then the ones the run sends to
        watch = list(self.sending.watch_endpoints) or self.endpoints
        followed = in_turn(watch, watch[len(self.watchers) % len(watch)])
        followed += [url for url in self.endpoints if url not in followed]
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        # (@ray.remote made both actor classes ActorClasses, but mypy does not apply class decorators)
        return WatcherActor.options(scheduling_strategy=strategy).remote(  # type: ignore[attr-defined]
            followed, WATCH_POLL_S, self.sending.failover_after, self.sending.confirmations
        )

    def _new_actor(self, node_id: str) -> ray.actor.ActorHandle:
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        return SenderActor.options(num_cpus=0, scheduling_strategy=strategy).remote(  # type: ignore[attr-defined]
            self.run_id, self.chain_id, self.fees, self.sending
        )

    def _spare_on(self, node_id: str) -> ray.actor.ActorHandle | None:
        """One of the node's spares, started (one still starting is further on than a new
        process), or None when none is left alive."""
        spares = self._spare.get(node_id, [])
        while spares:
            spare = spares.pop(0)
            try:
                ray.get(spare.__ray_ready__.remote())
                return spare
            except ray.exceptions.RayActorError:
                continue
        return None

    def _stock(self, node_id: str) -> None:
        """Starts the node's spare sender processes, without waiting for them."""
        spares = self._spare.setdefault(node_id, [])
        spares += [self._new_actor(node_id) for _ in range(self.spares - len(spares))]

    def _setups(self, actors: range | list[int]) -> list[ray.ObjectRef]:
        # by reference: a small argument is inlined in the task's spec, which Ray keeps in its
        # control store; a reference leaves the phrase in the object store of the nodes using it
        phrase = ray.put(self.source.phrase())
        return [self.actors[a].setup.remote(self.plan.workers_of(a), self.endpoints, phrase, self.watchers[self.slots[a]]) for a in actors]

    @property
    def actor_ids(self) -> list[str]:
        return [a._actor_id.hex() for a in self.actors]

    @property
    def ray_nodes(self) -> int:
        return len(self.watchers)

    def prepare(self, phase: PhaseSpec, payload: Payload) -> list[int]:
        """Signs ahead before the phase's start time is set. An actor lost since the last phase
        is replaced first (nothing of this phase to rebuild); answers which were."""
        answers: list[dict[int, int] | None] = _each([a.prepare_phase.remote(phase, payload) for a in self.actors])
        revived = [a for a, got in enumerate(answers) if got is None]
        for a in revived:
            self._revive(a)
            answers[a] = cast(dict[int, int], ray.get(self.actors[a].prepare_phase.remote(phase, payload)))
        self._bases = {w: nonce for got in answers if got is not None for w, nonce in got.items()}  # nonces at the phase's start
        return revived

    @property
    def bases(self) -> dict[int, int]:
        """Each worker's nonce at the start of the phase last prepared."""
        return dict(self._bases)

    def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int) -> list[ray.ObjectRef]:
        self._phase = _PhaseRun(phase, payload, t0, commit_timeout_s, trial)
        self._phase_refs = [a.run_phase.remote(phase, payload, t0, commit_timeout_s, trial) for a in self.actors]
        return list(self._phase_refs)

    def lost(self, done: list[ray.ObjectRef]) -> list[int]:
        """The actors whose phase ended because the actor died (its process, or its Ray node)."""
        dead = []
        for ref in done:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                dead.append(self._phase_refs.index(ref))
        return dead

    def replace(self, a: int, ledger: PhaseLedger) -> tuple[ray.ObjectRef, bool]:
        """A new actor for actor ``a``'s workers, on its node if that is alive (else on another),
        which rebuilds from the chain what ``a`` did in the phase and sends the rest. Answers its
        phase and whether it was a spare (else a process had to start)."""
        assert self._phase is not None, "replaced only while a phase runs"
        spare = self._revive(a)
        workers = [w.worker for w in self.plan.workers_of(a)]
        p = self._phase
        ref: ray.ObjectRef = self.actors[a].recover_phase.remote(
            p.phase, p.payload, p.t0, p.commit_timeout_s, p.trial, {w: self._bases[w] for w in workers}, ledger.of(workers)
        )
        self._phase_refs[a] = ref
        return ref, spare

    def _revive(self, a: int) -> bool:
        """A new actor ``a`` with the same workers, set up; its lost predecessor's counters are
        kept so that the run's totals do not lose them. Answers whether it was a spare."""
        spare = self._respawn(a)
        ray.get(self._setups([a]))
        return spare

    def _respawn(self, a: int) -> bool:
        """A new actor ``a``, on its node if that is alive (else on another), not set up yet: a
        spare if the node has one (answers True), else a new process."""
        if a in self._stats_of:
            self._lost_totals += self._stats_of.pop(a).kept()
        alive = node_slots(None)
        if self.slots[a] not in alive:
            self.slots[a] = alive[a % len(alive)]
        if self.slots[a] not in self.watchers:
            self.watchers[self.slots[a]] = self._new_watcher(self.slots[a])
            ray.get(self.watchers[self.slots[a]].start.remote(None if self._last_block is None else self._last_block + 1))
        with contextlib.suppress(Exception):
            ray.kill(self.actors[a])
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
        for a, answer in enumerate(_each([a.collect.remote() for a in self.actors])):
            if answer is None:
                continue
            table, stats, seen = answer
            self._stats_of[a] = stats
            if table is not None:
                tables.append(table)
            totals += stats
            events += seen
        # every watcher sees the same chain (each drains its own list): each block once, as the first watcher has it
        seen_blocks: dict[int, BlockRow] = {}
        lags: list[WatcherLag] = []
        reorgs: list[Reorg] = []
        receipts: dict[str, str] = {}
        for node_id, report in zip(list(self.watchers), _each([w.take.remote() for w in self.watchers.values()]), strict=True):
            if report is None:
                self._replace_watcher(node_id)
                continue
            events += report.events
            lags.append(report.lag)
            reorgs += report.reorgs
            if report.receipts is not None:
                receipts[report.receipts[0]] = report.receipts[1]
            if report.blocks:
                self._handed[node_id] = report.blocks[-1].number
            for b in report.blocks:
                if (self._last_block is None or b.number > self._last_block) and b.number not in seen_blocks:
                    seen_blocks[b.number] = b
        blocks = [seen_blocks[n] for n in sorted(seen_blocks)]
        if blocks:
            self._last_block = blocks[-1].number
        lag = WatcherLag(max((lag.blocks for lag in lags), default=0), max((lag.seconds for lag in lags), default=0.0))
        return Collected(tables, totals, lag, blocks, sorted(events, key=lambda e: e.t), reorgs, receipts)

    def _replace_watcher(self, node_id: str) -> None:
        """A lost watcher's successor starts from the block after the last one handed over, and
        the node's senders follow it."""
        with contextlib.suppress(Exception):
            ray.kill(self.watchers[node_id])
        del self.watchers[node_id]
        if node_id not in node_slots(None):
            return  # the node is gone with its senders: replacing those places a watcher where they go
        self.watchers[node_id] = watcher = self._new_watcher(node_id)
        # from after the last block the lost one handed over: its senders saw nothing later
        last = self._handed.pop(node_id, self._last_block)
        ray.get(watcher.start.remote(None if last is None else last + 1))
        _each([self.actors[a].follow.remote(watcher) for a, n in enumerate(self.slots) if n == node_id])

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Workers stop at their next slot; what they had sent gets ``grace_s`` to land."""
        with contextlib.suppress(Exception):
            ray.get([a.stop.remote(grace_s) for a in self.actors], timeout=10)
            ray.wait(self._phase_refs, num_returns=len(self._phase_refs), timeout=grace_s + 12)

    def idle(self) -> None:
        """Between the runs of a series: the senders stop everything they do on their own (gap
        checks re-sending what a node lost, following the watcher), so nothing of this run
        reaches the chain while the next one sets up. The processes stay."""
        with contextlib.suppress(Exception):
            ray.get([a.close.remote() for a in self.actors], timeout=10)

    def shutdown(self) -> None:
        self.idle()
        with contextlib.suppress(Exception):
            ray.get([w.stop.remote() for w in self.watchers.values()], timeout=10)
        spares = [s for node in self._spare.values() for s in node]
        for handle in self.actors + spares + list(self.watchers.values()):
            with contextlib.suppress(Exception):
                ray.kill(handle)
        self.actors, self.watchers, self.slots, self._spare = [], {}, [], {}

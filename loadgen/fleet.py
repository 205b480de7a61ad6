"""The sender fleet: the Ray actors that host the workers, one block watcher per Ray node, and
the batches of rows and blocks they hand back. This is where the driver starts ``actors/``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from web3 import Web3

from actors.endpoints import EndpointEvent
from actors.watcher import BlockRow, WatcherActor
from actors.worker import SenderActor
from loadgen.accounts import MnemonicSource
from loadgen.fees import Fees
from loadgen.plan import PhaseSpec, RunPlan
from loadgen.sending import Sending
from loadgen.workloads.base import Payload

WATCH_POLL_S = 0.05


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
    totals: dict[str, float]
    blocks: list[BlockRow] = field(default_factory=list)
    events: list[EndpointEvent] = field(default_factory=list)


class SenderFleet:
    def __init__(self, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> None:
        self.run_id = run_id
        self.chain_id = chain_id
        self.fees = fees
        self.sending = sending
        self.actors: list[ray.actor.ActorHandle] = []
        self.watchers: list[ray.actor.ActorHandle] = []
        self._phase_refs: list[ray.ObjectRef] = []

    def start(self, plan: RunPlan, endpoints: list[str], source: MnemonicSource) -> list[str]:
        """Places the actors (one watcher per Ray node they use) and answers the workers' addresses."""
        n_actors = max(w.actor for w in plan.workers) + 1
        slots = node_slots(n_actors)
        nodes = sorted(set(slots), key=slots.index)
        watchers = {}
        for i, node_id in enumerate(nodes):
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            # (@ray.remote made both actor classes ActorClasses, but mypy does not apply class decorators)
            own = i % len(endpoints)  # the others, in order, are where it goes when its own stops answering
            followed = endpoints[own:] + endpoints[:own]
            watchers[node_id] = WatcherActor.options(scheduling_strategy=strategy).remote(  # type: ignore[attr-defined]
                followed, WATCH_POLL_S, self.sending.failover_after
            )
        ray.get([w.start.remote() for w in watchers.values()])
        self.watchers = list(watchers.values())
        self.actors = [
            SenderActor.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(slots[a], soft=False)).remote(  # type: ignore[attr-defined]
                self.run_id, self.chain_id, self.fees, self.sending
            )
            for a in range(n_actors)
        ]
        answers: list[list[str]] = ray.get(
            [actor.setup.remote(plan.workers_of(a), endpoints, source.phrase(), watchers[slots[a]]) for a, actor in enumerate(self.actors)]
        )
        addresses = [""] * len(plan.workers)
        for a, got in enumerate(answers):
            for spec, address in zip(plan.workers_of(a), got, strict=True):
                addresses[spec.worker] = Web3.to_checksum_address(address)
        return addresses

    @property
    def ray_nodes(self) -> int:
        return len(self.watchers)

    def prepare(self, phase: PhaseSpec, payload: Payload) -> None:
        """Signs ahead before the phase's start time is set."""
        ray.get([a.prepare_phase.remote(phase, payload) for a in self.actors])

    def run_phase(self, phase: PhaseSpec, payload: Payload, t0: float, commit_timeout_s: float, trial: int) -> list[ray.ObjectRef]:
        self._phase_refs = [a.run_phase.remote(phase, payload, t0, commit_timeout_s, trial) for a in self.actors]
        return list(self._phase_refs)

    def collect(self) -> Collected:
        answers: list[tuple[pa.Table | None, dict[str, float], list[EndpointEvent]]] = ray.get([a.collect.remote() for a in self.actors])
        tables: list[pa.Table] = []
        totals: dict[str, float] = {}
        events: list[EndpointEvent] = []
        for table, stats, seen in answers:
            if table is not None:
                tables.append(table)
            for k, v in stats.items():
                totals[k] = max(totals.get(k, 0), v) if k.startswith("max_") else totals.get(k, 0) + v
            events += seen
        blocks: list[BlockRow] = ray.get(self.watchers[0].take_blocks.remote()) if self.watchers else []
        for seen in ray.get([w.take_events.remote() for w in self.watchers]):
            events += seen
        return Collected(tables, totals, blocks, sorted(events, key=lambda e: e.t))

    def stop(self) -> None:
        """Workers stop at their next slot; what they had sent gets a moment to land."""
        with contextlib.suppress(Exception):
            ray.get([a.stop.remote() for a in self.actors], timeout=10)
            ray.wait(self._phase_refs, num_returns=len(self._phase_refs), timeout=15)

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            ray.get([a.close.remote() for a in self.actors], timeout=10)
        with contextlib.suppress(Exception):
            ray.get([w.stop.remote() for w in self.watchers], timeout=10)
        for handle in self.actors + self.watchers:
            with contextlib.suppress(Exception):
                ray.kill(handle)

"""Actors as Ray actors, each pinned to its node: the senders of a node follow that node's
watcher."""

from __future__ import annotations

import functools
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.sender_actor import SenderActor
from actors.watcher_actor import RayWatcherFeed, WatcherActor
from loadgen.chains.fees import Fees
from loadgen.engine.hosting.base import Handle, Host, Ref
from loadgen.engine.sending import Sending

SIGNAL_SLICE_S = 0.05


@functools.cache
def _remote(cls: type, **options: Any) -> Any:
    return ray.remote(**options)(cls)


class RayHost(Host):
    kind = "ray"

    def sender(self, node_id: str, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> Handle:
        actor = _remote(SenderActor, max_concurrency=1000)
        return actor.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
            node_id[:12], run_id, chain_id, fees, sending
        )

    def watcher(self, node_id: str, endpoints: list[str], poll_s: float, failover_after: int, confirmations: int) -> Handle:
        actor = _remote(WatcherActor, num_cpus=0, max_concurrency=1000)
        return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
            endpoints, poll_s, failover_after, confirmations
        )

    def feed(self, watcher: Handle) -> RayWatcherFeed:
        return RayWatcherFeed(watcher)

    def get(self, refs: Any, timeout: float | None = None) -> Any:
        return ray.get(refs, timeout=timeout)

    def wait(self, refs: list[Ref], timeout_s: float) -> tuple[list[Ref], list[Ref]]:
        # in slices: a signal's handler runs only between two of them (ray.wait holds the main
        # thread in C++), and a stop must reach the senders at once
        deadline = time.monotonic() + timeout_s
        done: list[Ref] = []
        pending = refs
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=min(SIGNAL_SLICE_S, max(deadline - time.monotonic(), 0)))
            done += ready
            if time.monotonic() >= deadline:
                break
        return done, pending

    def died(self, ref: Ref) -> bool:
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError:
            return True
        return False

    def each(self, refs: list[Ref]) -> list[Any]:
        answers: list[Any] = []
        for ref in refs:
            try:
                answers.append(ray.get(ref))
            except ray.exceptions.RayActorError:
                answers.append(None)
        return answers

    def started(self, handle: Handle) -> bool:
        try:
            ray.get(handle.__ray_ready__.remote())
        except ray.exceptions.RayActorError:
            return False
        return True

    def kill(self, handle: Handle) -> None:
        ray.kill(handle)

    def put(self, value: Any) -> Any:
        # by reference: a small argument is inlined in the task's spec, which Ray keeps in its
        # control store; a reference leaves the value in the object store of the nodes using it
        return ray.put(value)

    def node_slots(self, n_wanted: int | None) -> list[str]:
        """As many per node as it has CPUs, interleaved across nodes."""
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        per_node = [[n["NodeID"]] * max(int(n["Resources"].get("CPU", 1)), 1) for n in nodes]
        width = max(len(g) for g in per_node)
        padded = [g + [""] * (width - len(g)) for g in per_node]
        slots = [nid for group in zip(*padded, strict=True) for nid in group if nid]
        if n_wanted is None:
            return slots
        return [slots[i % len(slots)] for i in range(n_wanted)]

    def actor_id(self, handle: Handle) -> str:
        return str(handle._actor_id.hex())

    def placement(self, actors: int, nodes: int) -> str:
        return f"{actors} actors on {nodes} Ray node(s)"

    def where(self) -> dict[str, Any]:
        # the cluster's control store: whose Ray ran it (a run's private one unless it was told to join)
        return {"hosting": self.kind, "ray_version": ray.__version__, "ray_cluster": ray.get_runtime_context().gcs_address,
                "ray_nodes": sorted(set(self.node_slots(None)))}  # fmt: skip

"""What the fleet asks of a host: to place actors, pass them a value, wait on their answers, and
say which are lost."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from actors.settling import InclusionFeed
from loadgen.chains.fees import Fees
from loadgen.engine.sending import Sending

Handle = Any  # an actor: its methods answer references through ``.remote(…)``
Ref = Any  # a method's answer to come


class Host(ABC):
    kind: str

    @abstractmethod
    def sender(self, node_id: str, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> Handle:
        """A SenderActor on the node, placed without waiting for it."""

    @abstractmethod
    def watcher(self, node_id: str, endpoints: list[str], poll_s: float, failover_after: int, confirmations: int) -> Handle:
        """A WatcherActor on the node, placed without waiting for it."""

    @abstractmethod
    def feed(self, watcher: Handle) -> InclusionFeed:
        """What the watcher's senders follow it by."""

    @abstractmethod
    def get(self, refs: Any, timeout: float | None = None) -> Any:
        """The answer (or answers) of ``refs``; raises what the method raised."""

    @abstractmethod
    def wait(self, refs: list[Ref], timeout_s: float) -> tuple[list[Ref], list[Ref]]:
        """Waits up to ``timeout_s`` for all of ``refs``: (answered, pending). A signal's handler
        runs while it waits."""

    @abstractmethod
    def died(self, ref: Ref) -> bool:
        """Whether an answered ``ref`` says its actor was lost (process or node gone); raises
        what the method raised."""

    @abstractmethod
    def each(self, refs: list[Ref]) -> list[Any]:
        """Each answer, or None where the actor is lost."""

    @abstractmethod
    def started(self, handle: Handle) -> bool:
        """Waits for the actor to start: False when it never will (lost)."""

    @abstractmethod
    def kill(self, handle: Handle) -> None: ...

    @abstractmethod
    def put(self, value: Any) -> Any:
        """``value`` as every actor it is passed to gets it (Ray: once into the object store)."""

    @abstractmethod
    def node_slots(self, n_wanted: int | None) -> list[str]:
        """Node ids for ``n_wanted`` actors (None: one per CPU of every node alive)."""

    @abstractmethod
    def actor_id(self, handle: Handle) -> str: ...

    @abstractmethod
    def placement(self, actors: int, nodes: int) -> str:
        """Where the workers are, as the run's event line says it."""

    @abstractmethod
    def where(self) -> dict[str, Any]:
        """Where the run ran, as its manifest says it."""

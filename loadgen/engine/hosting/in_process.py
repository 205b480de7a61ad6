"""Actors as objects of loadgen's own process: one event loop in a thread of its own runs every
actor's methods, as a Ray actor's loop would, while the driver's thread waits on their answers.
Nothing is copied on the way (no process boundary) and nothing can be lost but the process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import uvloop

from actors.sender_actor import SenderActor
from actors.settling import InclusionFeed
from actors.watcher_actor import WatcherActor
from loadgen.chains.fees import Fees
from loadgen.engine.hosting.base import Host, Ref
from loadgen.engine.sending import Sending

NODE = "local"  # the one node: this process
SIGNAL_SLICE_S = 0.05
CLOSE_S = 10.0


class LocalActor:
    """An object on the host's loop, called as a Ray actor is: ``actor.method.remote(…)``
    schedules the call on the loop and answers its future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, instance: Any) -> None:
        self.loop = loop
        self.instance = instance

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.loop, getattr(self.instance, name))


class _Method:
    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any]) -> None:
        self.loop, self.fn = loop, fn

    def remote(self, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(_call(self.fn, args, kwargs), self.loop)


async def _call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    answer = fn(*args, **kwargs)
    return await answer if inspect.isawaitable(answer) else answer


class InProcessHost(Host):
    kind = "process"

    def __init__(self) -> None:
        # uvloop, the loop Ray gives its async actors: the actors keep one loop whichever host
        # runs them (its timers tick in milliseconds: see actors/sender.py's TIMER_TICK_S)
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loadgen-actors", daemon=True)

    def __enter__(self) -> InProcessHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Cancels what the actors left running (the fleet has stopped and closed them) and
        ends the loop."""

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            with contextlib.suppress(TimeoutError):  # a call stuck past it: the loop stops all the same
                asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(timeout=CLOSE_S)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CLOSE_S)
            if not self._thread.is_alive():
                self.loop.close()

    def place(self, cls: type, *args: Any) -> LocalActor:
        async def construct() -> Any:  # on the loop: the actor's asyncio objects belong to it
            return cls(*args)

        return LocalActor(self.loop, asyncio.run_coroutine_threadsafe(construct(), self.loop).result())

    def sender(self, node_id: str, run_id: str, chain_id: int, fees: Fees, sending: Sending) -> LocalActor:
        return self.place(SenderActor, node_id, run_id, chain_id, fees, sending)

    def watcher(self, node_id: str, endpoints: list[str], poll_s: float, failover_after: int, confirmations: int) -> LocalActor:
        return self.place(WatcherActor, endpoints, poll_s, failover_after, confirmations)

    def feed(self, watcher: LocalActor) -> InclusionFeed:
        actor: InclusionFeed = watcher.instance  # on the same loop as its senders: followed directly
        return actor

    def get(self, refs: Any, timeout: float | None = None) -> Any:
        if isinstance(refs, list):
            deadline = None if timeout is None else time.monotonic() + timeout
            return [r.result(None if deadline is None else max(deadline - time.monotonic(), 0)) for r in refs]
        return refs.result(timeout)

    def wait(self, refs: list[Ref], timeout_s: float) -> tuple[list[Ref], list[Ref]]:
        deadline = time.monotonic() + timeout_s
        while True:  # in slices, as on Ray: a stop's signal handler runs between two
            left = deadline - time.monotonic()
            done, pending = concurrent.futures.wait(refs, timeout=min(SIGNAL_SLICE_S, max(left, 0)))
            if not pending or left <= 0:
                return [r for r in refs if r in done], [r for r in refs if r in pending]

    def died(self, ref: Ref) -> bool:
        ref.result()  # raises what the method raised
        return False

    def each(self, refs: list[Ref]) -> list[Any]:
        return [r.result() for r in refs]

    def started(self, handle: LocalActor) -> bool:
        return True

    def kill(self, handle: LocalActor) -> None:
        """Nothing to kill: the fleet has stopped and closed it, and the loop ends with the host."""

    def put(self, value: Any) -> Any:
        return value

    def node_slots(self, n_wanted: int | None) -> list[str]:
        return [NODE] * (n_wanted or 1)

    def actor_id(self, handle: LocalActor) -> str:
        return f"{type(handle.instance).__name__}-{id(handle.instance):x}"

    def placement(self, actors: int, nodes: int) -> str:
        return "loadgen's own process (no Ray: run.hosting)"

    def where(self) -> dict[str, Any]:
        return {"hosting": self.kind, "ray_cluster": None, "ray_nodes": []}

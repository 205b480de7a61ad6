"""The host's block watcher as an actor the driver places (a Ray actor pinned to its node, or an
object of loadgen's own process), and what its senders follow it by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.watcher import BlockWatcher, Followed, WatcherReport


class WatcherActor:
    """The host's BlockWatcher, as the driver reaches it."""

    def __init__(self, endpoints: list[str], poll_interval_s: float, failover_after: int, confirmations: int = 0) -> None:
        self.watcher = BlockWatcher(endpoints, poll_interval_s, failover_after=failover_after, confirmations=confirmations)

    async def start(self, from_block: int | None = None) -> int:
        return await self.watcher.start(from_block)

    async def inclusions_since(self, cursor: int, wait_s: float = 0.5) -> Followed:
        return await self.watcher.inclusions_since(cursor, wait_s)

    async def take(self) -> WatcherReport:
        return self.watcher.take()

    async def stop(self) -> None:
        await self.watcher.stop()


@dataclass(frozen=True)
class RayWatcherFeed:
    """A sender's way to its watcher when that is a Ray actor (``handle``): an answer lost on
    the way is None, and the sender asks again."""

    handle: Any

    async def inclusions_since(self, cursor: int) -> Followed | None:
        import ray.exceptions  # (only where Ray hosts the actors: a run in one process never imports Ray)

        try:
            followed: Followed = await self.handle.inclusions_since.remote(cursor)
        except ray.exceptions.RayError:
            return None
        return followed

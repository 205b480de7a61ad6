"""Which of the chain's RPC endpoints an actor sends through, and when one is down.

A signed transaction is valid on every node of the chain, so a worker whose endpoint stops
answering carries on through another one. An endpoint is *down* after ``failover_after``
unhealthy answers in a row (see ``RpcClient.failures``); a down endpoint gets nothing but a probe
every ``probe_s``, and is up again at the first healthy answer. With failover off a worker stays
on its own endpoint whatever happens (what that endpoint refuses is what the user measures), and
the ups and downs are still reported.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from actors.rpc import RpcClient, RpcError


def in_turn(urls: list[str], first: str) -> list[str]:
    """The run's endpoints from ``first`` on, wrapping round: the order a stand-in is sought in."""
    i = urls.index(first)
    return urls[i:] + urls[:i]


@dataclass(frozen=True, slots=True)
class EndpointEvent:
    t: float
    endpoint: str
    up: bool
    reason: str

    def line(self) -> str:
        return f"endpoint {self.endpoint} {'is back' if self.up else 'is down'}: {self.reason}"


class Endpoints:
    def __init__(self, clients: dict[str, RpcClient], failover: bool = True, failover_after: int = 3, probe_s: float = 1.0) -> None:
        self.clients = clients  # url → client, in the order the run lists the endpoints
        self.failover = failover
        self.failover_after = failover_after
        self.probe_s = probe_s
        self.down: set[str] = set()
        self.events: list[EndpointEvent] = []

    def is_down(self, url: str) -> bool:
        if url not in self.down and self.clients[url].failures >= self.failover_after:
            self.down.add(url)
            self.events.append(EndpointEvent(time.time(), url, False, self.clients[url].last_failure))
        return url in self.down

    def route(self, home: str) -> str:
        """Where a worker at home on ``home`` sends now: home while it is up (or failover is
        off), else the first endpoint up after it in the run's order, else home all the same."""
        if not self.is_down(home) or not self.failover:
            return home
        for url in in_turn(list(self.clients), home)[1:]:
            if not self.is_down(url):
                return url
        return home

    async def probe(self) -> None:
        """Asks each down endpoint for its block number; an answer brings it back."""
        for url in sorted(self.down):
            try:
                await self.clients[url].call("eth_blockNumber")
            except RpcError:
                continue
            self.down.discard(url)
            self.events.append(EndpointEvent(time.time(), url, True, "answers again"))

    async def keep_probing(self) -> None:
        while True:
            await asyncio.sleep(self.probe_s)
            await self.probe()

    def take_events(self) -> list[EndpointEvent]:
        events, self.events = self.events, []
        return events

"""The block watchers of a fleet: one per node its senders use, each following the chain on
its own, and the blocks they hand back merged so that the driver gets each block once."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from actors.blocks import BlockRow
from actors.endpoints import EndpointEvent, in_turn
from actors.stats import WatcherLag
from actors.watcher import Reorg
from loadgen.engine.hosting.base import Handle, Host
from loadgen.engine.sending import Sending

WATCH_POLL_S = 0.05


@dataclass
class WatcherNews:
    """What the watchers handed over in one take: the new blocks (each once, in order), what
    they saw of the endpoints and the chain, and the nodes whose watcher was lost and replaced
    (their senders must follow the new one)."""

    blocks: list[BlockRow] = field(default_factory=list)
    events: list[EndpointEvent] = field(default_factory=list)
    lag: WatcherLag = field(default_factory=lambda: WatcherLag(0, 0.0))  # the slowest watcher's: its senders decide last
    reorgs: list[Reorg] = field(default_factory=list)
    receipts: dict[str, str] = field(default_factory=dict)  # endpoint a watcher reads → how it reads receipts
    replaced: list[str] = field(default_factory=list)


class NodeWatchers:
    def __init__(self, host: Host, sending: Sending, endpoints: list[str], node_ids: list[str]) -> None:
        self.host = host
        self.sending = sending
        self.endpoints = endpoints
        self.by_node: dict[str, Handle] = {}  # node id → the node's block watcher
        self._handed: dict[str, int] = {}  # watcher's node → the last block it handed over
        self.last_block: int | None = None  # the newest block handed to the driver
        for node_id in node_ids:
            self.by_node[node_id] = self._new(node_id)
        # placed without waiting: the processes start while the driver deploys and opens the round
        self._starting = [w.start.remote() for w in self.by_node.values()]

    def started(self) -> None:
        self.host.get(self._starting)
        self._starting = []

    def _new(self, node_id: str) -> Handle:
        # its own endpoint first; the others, in turn, are where it goes when that one stops
        # answering: the watch endpoints, then the ones the run sends to
        watch = list(self.sending.watch_endpoints) or self.endpoints
        followed = in_turn(watch, watch[len(self.by_node) % len(watch)])
        followed += [url for url in self.endpoints if url not in followed]
        return self.host.watcher(node_id, followed, WATCH_POLL_S, self.sending.failover_after, self.sending.confirmations)

    def on(self, node_id: str) -> Handle:
        """The node's watcher; a node new to the fleet gets one, from the block after the last
        one handed over (its senders saw nothing later)."""
        if node_id not in self.by_node:
            self.by_node[node_id] = self._new(node_id)
            self.host.get(self.by_node[node_id].start.remote(None if self.last_block is None else self.last_block + 1))
        return self.by_node[node_id]

    def take(self) -> WatcherNews:
        """What every watcher has to hand over; a lost one hands over nothing and is replaced
        from the block after the last one it handed over."""
        news = WatcherNews()
        # every watcher sees the same chain (each drains its own list): each block once, as the first watcher has it
        seen_blocks: dict[int, BlockRow] = {}
        lags: list[WatcherLag] = []
        for node_id, report in zip(list(self.by_node), self.host.each([w.take.remote() for w in self.by_node.values()]), strict=True):
            if report is None:
                if self._replace(node_id):
                    news.replaced.append(node_id)
                continue
            news.events += report.events
            lags.append(report.lag)
            news.reorgs += report.reorgs
            if report.receipts is not None:
                news.receipts[report.receipts[0]] = report.receipts[1]
            if report.blocks:
                self._handed[node_id] = report.blocks[-1].number
            for b in report.blocks:
                if (self.last_block is None or b.number > self.last_block) and b.number not in seen_blocks:
                    seen_blocks[b.number] = b
        news.blocks = [seen_blocks[n] for n in sorted(seen_blocks)]
        if news.blocks:
            self.last_block = news.blocks[-1].number
        news.lag = WatcherLag(max((lag.blocks for lag in lags), default=0), max((lag.seconds for lag in lags), default=0.0))
        return news

    def _replace(self, node_id: str) -> bool:
        """A lost watcher's successor, unless its node is gone with its senders (replacing those
        places a watcher where they go). Answers whether there is one."""
        with contextlib.suppress(Exception):
            self.host.kill(self.by_node[node_id])
        del self.by_node[node_id]
        if node_id not in self.host.node_slots(None):
            return False
        self.by_node[node_id] = watcher = self._new(node_id)
        last = self._handed.pop(node_id, self.last_block)
        self.host.get(watcher.start.remote(None if last is None else last + 1))
        return True

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.host.get([w.stop.remote() for w in self.by_node.values()], timeout=10)
        for handle in self.by_node.values():
            with contextlib.suppress(Exception):
                self.host.kill(handle)
        self.by_node = {}

"""What the actors report to the driver at each collection, as typed records (pure: the
driver's verdicts and the live display read them without Ray): a new counter is one field here
and its readers."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar


@dataclass(slots=True)
class SenderStats:
    """How the driver sums actors: the run's counters add up and outlive an actor lost and
    replaced; the gauges of the moment add up and go with a lost actor; the peaks since the
    last collection take the largest."""

    GAUGES: ClassVar[tuple[str, ...]] = ("inflight", "recent")
    PEAKS: ClassVar[tuple[str, ...]] = ("max_lag_s", "max_answer_s", "max_busy")

    # the run's transactions, by where they are
    scheduled: int = 0
    sent: int = 0
    accepted: int = 0
    committed: int = 0
    reverted: int = 0
    rejected: int = 0
    dropped: int = 0
    unsent: int = 0
    # what went wrong on the way, and what was done about it
    gaps_recovered: int = 0  # accepted, lost by a node, sent again
    stranded: int = 0  # stuck in a queue behind a nonce given up
    failovers: int = 0  # times a worker moved off its endpoint
    odd_answers: int = 0  # accepted with something else than the hash
    unconfirmed: int = 0  # answers lost: followed as if accepted
    recovered: int = 0  # rows rebuilt from the chain for a lost actor
    background_errors: int = 0  # errors the gap check survived
    cpu_s: float = 0.0  # the actor process's CPU since the run began
    # of the moment
    inflight: int = 0
    recent: int = 0  # inclusions seen before their send's answer
    # the worst since the last collection
    max_lag_s: float = 0.0  # a slot's send behind its scheduled time
    max_answer_s: float = 0.0  # the node's answer to a send
    max_busy: float = 0.0  # share of a core the actor's process used

    def __add__(self, other: SenderStats) -> SenderStats:
        summed = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            summed[f.name] = max(mine, theirs) if f.name in self.PEAKS else mine + theirs
        return SenderStats(**summed)

    def kept(self) -> SenderStats:
        """The counters alone: what a lost actor leaves to the run's totals."""
        return replace(self, **dict.fromkeys(self.GAUGES + self.PEAKS, 0))

    @property
    def ended(self) -> int:
        """Transactions that reached their end, refusals aside (a refused one may go again)."""
        return self.committed + self.reverted + self.dropped + self.unsent


@dataclass(frozen=True, slots=True)
class WatcherLag:
    """How far behind the chain's head the watcher reads: blocks, and seconds since the oldest
    block it has not read yet was known to exist (0 when it is up to date)."""

    blocks: int
    seconds: float

"""What the live display shows of a running run: a snapshot of the actors' counters and of
what committed in the last seconds (pure: the search's early stop reads it too)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.stats import SenderStats, WatcherLag

RECENT_S = 5.0  # what the live display calls "now"


@dataclass
class Progress:
    """A snapshot for the live display, summed over actors."""

    phase: str
    epoch: int  # from 0, as in the rows and in summary.json's rounds
    planned: int  # the whole run's: every phase of every epoch
    stats: SenderStats  # the actors' counters, over the whole run so far
    elapsed_s: float
    phase_left_s: float  # until the phase's last scheduled send
    lagging: bool = False
    fixed_slots: bool = False  # a refused slot is lost rather than retried (rate-driven workloads)
    interval_s: float | None = None  # a worker's time between two slots, when it is one number
    epochs: int = 1
    run_left_s: float = 0.0  # until the run's last scheduled send: the rest of this phase and every later one
    tx_per_s: float = 0.0  # committed per second over the last RECENT_S
    latency_p95_s: float | None = None  # of what committed in the last RECENT_S; None: nothing did
    watcher_lag: WatcherLag = field(default_factory=lambda: WatcherLag(0, 0.0))  # the slowest block watcher's, now

    @property
    def done(self) -> int:
        """Planned transactions that reached their end. A refused one is sent again (one more
        row), unless slots are fixed: then the refusal is its end."""
        ended = self.stats.ended + (self.stats.rejected if self.fixed_slots else 0)
        return min(ended, self.planned)

    @property
    def slow_answers(self) -> bool:
        """The node takes longer to answer a send than a worker waits between two: a closed-loop
        tool would fall behind here; an open one keeps its schedule."""
        return self.interval_s is not None and self.stats.max_answer_s > self.interval_s


class RecentCommits:
    """What committed in the last ``window_s``, by when its block was seen: the rate and the
    latency the live display shows as "now" (the run's whole percentiles come at the end)."""

    def __init__(self, window_s: float = RECENT_S) -> None:
        self.window_s = window_s
        self._included = np.empty(0)
        self._latency = np.empty(0)

    def add(self, table: pa.Table) -> None:
        committed = table.filter(pc.equal(table.column("status"), "committed"))
        if committed.num_rows:
            included = committed.column("t_included").to_numpy(zero_copy_only=False).astype(float)
            latency = committed.column("latency_s").to_numpy(zero_copy_only=False).astype(float)
            self._included = np.concatenate([self._included, included])
            self._latency = np.concatenate([self._latency, latency])

    def now(self, t: float) -> tuple[float, float | None]:
        """Committed per second and the latency p95 over the window that ends at ``t``."""
        keep = self._included >= t - self.window_s  # rows come in batches, not in inclusion order
        self._included, self._latency = self._included[keep], self._latency[keep]
        latency = self._latency[~np.isnan(self._latency)]
        return self._included.size / self.window_s, float(np.percentile(latency, 95)) if latency.size else None

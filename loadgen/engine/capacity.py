"""Whether a run measured the chain or the generator: a trial whose senders fell behind their
schedule, or ran out of CPU, offered the chain less than planned, so its commit ratio says
nothing about the pace. Pure: the run gathers the figures, this judges them.

The lag bound scales with the pace: a transaction sent a quarter of a worker's interval late
has changed the pace it was meant to test; below a floor the lag is the event loop's noise.
A sender actor is one Python process: above ``BUSY_LIMIT`` of a core for most of the run it
had no time left to keep the schedule, lag or not.

Lag the node caused is the node's: in the open model a worker waits only when the node leaves
too many of its sends unanswered (or holds every connection), so when the node's answers took
longer than the lag bound and the senders had CPU to spare, the lag says the chain was slow, and
the trial stands. A closed loop waits for every answer by design: its lag is the generator's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

LAG_FLOOR_S = 0.1
LAG_SHARE_OF_INTERVAL = 0.25
BUSY_LIMIT = 0.9  # of one core, the most a sender actor's process can use
BUSY_TARGET = 0.5  # of one core: the load per actor to plan for, with room for bursts


# a sender actor's CPU per transaction against a node, signing included (BENCHMARKS.md, "CPU per
# transaction": 0.5–0.8 ms measured): what --dry-run plans actors with, at BUSY_TARGET of a core
SENDER_CPU_PER_TX_S = 0.0008


def actors_for(rate_tps: float, cpu_per_tx_s: float = SENDER_CPU_PER_TX_S) -> int:
    """Sender actors (one process, about one core each) a rate needs at ``cpu_per_tx_s`` a
    transaction: a run's own figure, or the measured one."""
    return max(1, math.ceil(rate_tps * cpu_per_tx_s / BUSY_TARGET))


def lag_bound_s(interval_s: float | None) -> float:
    return max(LAG_FLOOR_S, LAG_SHARE_OF_INTERVAL * interval_s) if interval_s else LAG_FLOOR_S


@dataclass(frozen=True)
class GeneratorLoad:
    """What the senders did over a run's phases."""

    lag_p99_s: float | None
    interval_s: float | None  # a worker's time between two slots, when it is one number
    busy: tuple[float, ...]  # the busiest actor's share of a core, one sample per collection
    actors: int
    cpu_s: float  # all sender actors' CPU time in the phases
    sent: int
    phase_s: float  # the phases' planned length, summed
    answer_p99_s: float | None = None  # how long the node took to answer a send
    closed_loop: bool = False  # send_mode: closed
    max_lag_s: float | None = None  # run.max_lag_s: the bound, when the experiment sets it

    @property
    def cpu_per_tx_s(self) -> float | None:
        return self.cpu_s / self.sent if self.sent else None

    @property
    def busy_share(self) -> float:
        """How much of the run the busiest actor spent at its CPU limit."""
        return sum(b >= BUSY_LIMIT for b in self.busy) / len(self.busy) if self.busy else 0.0


@dataclass(frozen=True)
class GeneratorVerdict:
    bound: bool
    lag_p99_s: float | None
    lag_bound_s: float
    busy_share: float
    lag_from_node: bool  # the lag was over its bound, and the node's slow answers explain it
    cpu_per_tx_ms: float | None
    offered_tps: float | None
    actors: int
    actors_needed: int | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(load: GeneratorLoad) -> GeneratorVerdict:
    bound_s = load.max_lag_s or lag_bound_s(load.interval_s)
    reasons = []
    late = load.lag_p99_s is not None and load.lag_p99_s > bound_s
    node_slow = load.answer_p99_s is not None and load.answer_p99_s > bound_s
    from_node = late and node_slow and not load.closed_loop and load.busy_share <= 0.5
    if late and not from_node:
        reasons.append(f"schedule lag p99 {load.lag_p99_s:.3f} s > {bound_s:.3f} s")
    if load.busy_share > 0.5:
        reasons.append(f"a sender actor at its CPU limit {load.busy_share:.0%} of the run")
    offered = load.sent / load.phase_s if load.phase_s > 0 else None
    per_tx = load.cpu_per_tx_s
    needed = None
    if offered and per_tx:
        needed = actors_for(offered, per_tx)
    if reasons:
        if load.busy_share > 0.5 and needed and needed > load.actors:
            more = f"; this rate needs ≥ {needed} sender actors (run.actors), {load.actors} ran"
        elif load.busy_share > 0.5:
            more = "; give the senders cores of their own (more Ray nodes, or the chain on other machines)"
        else:
            more = (
                "; the senders had CPU left: other processes held the cores, or (send_mode: closed) the node answered"
                " more slowly than the pace"
            )
        reason = "the generator, not the chain, limited this run: " + ", ".join(reasons) + more
    else:
        reason = None
    return GeneratorVerdict(
        bool(reasons),
        load.lag_p99_s,
        bound_s,
        load.busy_share,
        from_node,
        per_tx * 1000 if per_tx else None,
        offered,
        load.actors,
        needed,
        reason,
    )

"""Why a phase lost what the nodes had accepted: said in the summary and the display, not left
as a bare count of `dropped`.

A phase is diagnosed when more than half of what the nodes accepted (committed, reverted or
dropped) ended `dropped`. The likely causes come from what the run saw: transactions queued
behind a nonce that was never accepted, transactions the nodes forgot and loadgen sent again,
answers lost on the way, full blocks, and what the pools still held at the end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

LOST_SHARE = 0.5  # of what the nodes accepted, dropped


@dataclass(frozen=True)
class PhaseOutcome:
    phase: str
    epoch: int
    accepted: int  # rows committed, reverted or dropped
    dropped: int
    stranded: int  # dropped as never includable: behind a nonce that was given up
    forgotten: int  # accepted transactions the nodes no longer knew, sent again by the gap check
    unconfirmed: int  # sends whose answer was lost, followed as sent
    full_blocks: float  # share of the phase's blocks at 95% of their gas limit or more
    pools_left: int  # transactions the nodes' pools still held at the end (txpool_status)


@dataclass(frozen=True)
class Diagnosis:
    phase: str
    epoch: int
    dropped: int
    accepted: int
    causes: tuple[str, ...]

    def line(self) -> str:
        return f"{self.phase} (epoch {self.epoch}): {self.dropped:,} of {self.accepted:,} accepted were never included; " + "; ".join(
            self.causes
        )

    def to_dict(self) -> dict:
        return asdict(self)


def diagnose(o: PhaseOutcome) -> Diagnosis | None:
    if o.accepted == 0 or o.dropped <= LOST_SHARE * o.accepted:
        return None
    causes = []
    if o.stranded:
        causes.append(f"{o.stranded:,} waited behind a nonce that was never accepted (a worker gave up after refusals)")
    if o.forgotten:
        causes.append(f"the nodes forgot {o.forgotten:,} accepted transactions (pool limits evict them): raise the txpool slots")
    if o.unconfirmed:
        causes.append(f"{o.unconfirmed:,} sends had their answer lost (timeouts): the node may be overloaded")
    if o.full_blocks >= 0.5:
        causes.append(f"{o.full_blocks:.0%} of the blocks were full: the chain's gas per second is the limit")
    if o.pools_left:
        causes.append(f"the pools still held {o.pools_left:,} transactions at the end: raise commit_timeout_s if inclusion is only slow")
    if not causes:
        causes.append(
            "the nodes took them and dropped them without a word: a pool limit (txpool globalslots, accountslots, lifetime) "
            "or a fork rule that discards them after admission"
        )
    return Diagnosis(o.phase, o.epoch, o.dropped, o.accepted, tuple(causes))

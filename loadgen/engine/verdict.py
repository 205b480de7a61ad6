"""A run's verdict: PASS, FAIL, INVALID or INTERRUPTED. Pure: the run gathers the figures.

A run is judged on the chain only when it offered the chain its plan. It did not when its
senders fell behind their schedule (schedule lag p99 over its bound, loadgen/engine/capacity.py),
ran out of CPU, or sent at a rate short of the planned one by more than ``OFFERED_MARGIN``:
whatever the cause, the chain then met a lighter load than the one asked for, so a high commit
ratio says nothing about the planned pace, and the run is INVALID, never PASS. When the node's
slow answers held the senders back (the open model waits only then), the cause is the chain's,
and the verdict says so: a search counts such a trial as a failure of that pace, while one the
generator limited stops the search (its faster probes would measure the generator too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadgen.engine.capacity import GeneratorVerdict

OFFERED_MARGIN = 0.10  # a run that sent at under 90% of its planned rate did not run its plan

Verdict = Literal["PASS", "FAIL", "INVALID", "INTERRUPTED"]
EXIT_CODES: dict[str, int] = {"PASS": 0, "FAIL": 1, "INVALID": 4}


@dataclass(frozen=True)
class Offered:
    """The rate a run planned (every slot) and the rate its sends left at, each over its own
    span: from the first slot to the last slot, and to the last send. A slot left unsent (a
    worker that gave up, a lost nonce) was not offered."""

    planned_tps: float | None
    offered_tps: float | None

    @property
    def share(self) -> float | None:
        if self.planned_tps and self.offered_tps is not None:
            return self.offered_tps / self.planned_tps
        return None

    @property
    def short(self) -> bool:
        return self.share is not None and self.share < 1 - OFFERED_MARGIN


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    cause: Literal["generator", "node"] | None  # of an INVALID run: whose limit it measured
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_run(*, ratio_passed: bool, interrupted: bool, stopped_early: bool, generator: GeneratorVerdict, offered: Offered) -> Judgement:
    """``ratio_passed``: the commit ratio reached the threshold. A run stopped early (it could no
    longer reach the threshold) is a FAIL on what it sent, unless the generator limited it."""
    if interrupted:
        return Judgement("INTERRUPTED", None, ("the run was interrupted before it played out",))
    reasons = []
    if generator.bound and generator.reason:
        reasons.append(generator.reason)
    cause: Literal["generator", "node"] | None = "generator" if generator.bound else None
    if generator.lag_from_node:
        reasons.append(
            f"the node answered slowly (sends waited on it): schedule lag p99 {generator.lag_p99_s:.3f} s > "
            f"{generator.lag_bound_s:.3f} s, so the chain took less than the plan offered"
        )
        cause = cause or "node"
    if offered.short and not stopped_early and offered.share is not None:
        reasons.append(
            f"offered {offered.offered_tps:,.1f} tx/s of the {offered.planned_tps:,.1f} planned ({offered.share:.0%}; "
            f"at least {1 - OFFERED_MARGIN:.0%} needed)"
        )
        cause = cause or "node"  # the senders kept time and had CPU: refusals or waits held them back
    if reasons:
        return Judgement("INVALID", cause, tuple(reasons))
    return Judgement("PASS" if ratio_passed and not stopped_early else "FAIL", None, ())

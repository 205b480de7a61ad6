"""What a search found, said as sure as it is: the bracket it ended in, the answer rounded to
what that bracket supports, and how each side was decided. Pure: from the search's state.

The answer is the slow end of the bracket (the pace seen to pass), rounded *up* at the first
decimal the bracket's width leaves uncertain: rounding up keeps it on the passing side of a
monotone response, and digits finer than the bracket are noise (0.0237944 from a bracket
0.0215 … 0.0238 is 0.024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadgen.study.bisection import Probe, SearchState

MIN_EXPECTED_FAILURES = 20  # a verdict on one trial needs this many failures expected at the threshold


def rounded_up(hi: float, lo: float) -> float:
    """``hi`` rounded up at the decimal of the bracket's width."""
    width = hi - lo
    if width <= 0:
        return hi
    decimals = math.ceil(-math.log10(width))
    step = 10.0**-decimals
    value = math.ceil(hi / step - 1e-9) * step
    return float(f"{value:.{max(decimals, 0)}f}")


def transactions_for_a_verdict(threshold: float) -> int:
    """The fewest transactions one trial needs for a verdict at ``threshold`` on its own."""
    return math.ceil(MIN_EXPECTED_FAILURES / (1 - threshold))


@dataclass(frozen=True)
class Answer:
    param: str
    value: float | None  # rounded; None: nothing in the range passed
    lo: float  # the bracket: lo failed, hi passed
    hi: float
    passed: Probe | None  # the probe at hi
    failed: Probe | None  # the probe at lo
    pooled: bool  # repeats ≥ 2: each verdict at 95% confidence
    at_most: str | None = None  # why the search could only bound the answer from above

    def lines(self) -> list[str]:
        if self.value is None:
            return [f"no {self.param} in the range passed"]
        if self.at_most:
            lines = [f"minimum {self.param} ≤ {self.value:g}  ({self.at_most})"]
        else:
            lines = [f"minimum {self.param} ≈ {self.value:g}  (between {self.lo:g}, which fails, and {self.hi:g}, which passes)"]
        lines += ["  " + p.line(self.param) for p in (self.passed, self.failed) if p is not None]
        if self.pooled:
            lines.append(
                "  each verdict at 95% confidence: the Wilson interval of the pooled trials lies wholly on one side of the threshold"
            )
        else:
            lines.append(
                "  one trial a probe: each verdict is that trial's ratio against the threshold, without a confidence bound; "
                "--repeats 2 (or more) decides each probe at 95% confidence"
            )
        return lines


def answer_of(state: SearchState) -> Answer:
    probes = {p.value: p for p in state.probes}
    lo, hi = state.bracket
    pooled = state.repeats >= 2
    if state.min_value is None:
        return Answer(state.param, None, lo, hi, None, None, pooled)
    if state.status == "lo-passes":
        why = f"--lo {state.lo:g} already passes: lower --lo to look further"
        return Answer(state.param, state.lo, 0.0, state.lo, probes.get(state.lo), None, pooled, why)
    if state.status == "generator-bound":
        why = "the generator could not offer a faster pace: nothing below was decided on the chain"
        return Answer(state.param, state.min_value, lo, state.min_value, probes.get(state.min_value), None, pooled, why)
    return Answer(state.param, rounded_up(hi, lo), lo, hi, probes.get(hi), probes.get(lo), pooled)


def too_small(planned: int, threshold: float, repeats: int) -> str | None:
    """A warning when a trial is too small for the one-trial rule: its probes will be run again
    and pooled, and may end undecided (counted as failures)."""
    needed = transactions_for_a_verdict(threshold)
    if repeats >= 2 or planned >= needed:
        return None
    return (
        f"each trial schedules {planned:,} transactions; a one-trial verdict at {threshold:.0%} needs ≥ {needed:,} "
        f"({MIN_EXPECTED_FAILURES} failures expected at the threshold): every probe will run twice and be pooled, and a "
        f"probe still undecided counts as a failure. Make the trial bigger (more workers or transactions per worker) "
        f"or pass --repeats {math.ceil(needed / max(planned, 1))}"
    )

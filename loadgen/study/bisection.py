"""The minimum-pace search's logic, pure: verdicts on a probe's trials, bisection, and the
check of its own monotonicity assumption. It runs trials through a callback, so it is tested
against scripted responses without a chain (``loadgen.study.search`` runs real trials through it).
See ``loadgen.study.search`` for the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadgen.engine.progress import Progress

Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def verdict(committed: int, scheduled: int, threshold: float, pooled_trials: int) -> tuple[str, float, float]:
    """'pass', 'fail' or 'undecided', with the interval the rule used."""
    if pooled_trials >= 2:
        lower, upper = wilson(committed, scheduled)
        if lower >= threshold:
            return "pass", lower, upper
        if upper < threshold:
            return "fail", lower, upper
        return "undecided", lower, upper
    ratio = committed / scheduled if scheduled else 0.0
    if scheduled * (1 - threshold) < 20:
        return "undecided", ratio, ratio
    return ("pass" if ratio >= threshold else "fail"), ratio, ratio


def midpoint(lo: float, hi: float) -> float:
    """Geometric while the bracket spans a decade or more, arithmetic after."""
    mid = math.sqrt(lo * hi) if hi / lo >= 10 else (lo + hi) / 2
    return float(f"{mid:.6g}")


def probes_left(state: SearchState) -> int:
    """Probes the search still needs at most, from where it stands: the brackets' checks, the
    bisection's steps if every probe passed (the slower way down), and the check above."""
    checked = {p.value for p in state.probes}
    left = sum(v not in checked for v in (state.hi, state.lo))
    lo, hi = state.bracket
    while hi > lo > 0 and (hi - lo) / hi > state.tolerance:
        hi = midpoint(lo, hi)
        left += 1
    return left + 1


def can_still_pass(p: Progress, planned: int, fixed_slots: bool, threshold: float) -> bool:
    """Whether the best the rest of a trial could do still reaches the threshold."""
    s = p.stats
    lost = s.reverted + s.dropped + s.unsent
    rejected = s.rejected
    # fixed slots: a refused slot is a transaction that never commits; otherwise a refused item
    # is sent again, one more row, and may still commit
    best = (planned - lost - rejected) / planned if fixed_slots else (planned - lost) / (planned + rejected)
    return best >= threshold


@dataclass
class Trial:
    value: float
    repeat: int
    run_id: str
    run_dir: str
    scheduled: int
    committed: int
    commit_ratio: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    stopped_early: str | None = None
    verdict: str = ""  # this trial alone, by the one-trial rule; the probe's verdict pools its trials
    generator_bound: str | None = None  # why the generator, not the chain, limited the trial
    held_back: str | None = None  # why the chain took less than the trial offered (INVALID, the node's cause)
    wall_s: float = 0.0  # how long the trial took, start to drained


@dataclass
class Probe:
    value: float
    verdict: str  # pass or fail: what the bisection went by
    commit_ratio: float
    lower: float  # the 95% Wilson interval of the pooled commit ratio, whatever rule decided
    upper: float
    trials: list[int] = field(default_factory=list)  # indexes into SearchState.trials
    committed: int = 0
    scheduled: int = 0
    undecided: bool = False  # its trials could not decide: counted as a failure, the safe side
    why: str = ""  # what decided a failure besides the ratio: stopped early, the node held the senders back

    def line(self, param: str) -> str:
        """One line: the verdict, n and the interval (what the terminal and the notes print)."""
        word = "UNDECIDED → counted as FAIL" if self.undecided else self.verdict.upper()
        why = f"; {self.why}" if self.why else ""
        return (
            f"{param}={self.value:g}: {word}, {self.committed:,}/{self.scheduled:,} committed ({self.commit_ratio:.1%}; "
            f"95% interval {self.lower:.1%}–{self.upper:.1%}; {len(self.trials)} trial(s){why})"
        )


@dataclass
class SearchState:
    param: str
    lo: float
    hi: float
    threshold: float
    tolerance: float
    repeats: int
    config: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bracket: list[float] = field(default_factory=list)
    min_value: float | None = None
    status: str = "running"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["min_pace_s"] = self.min_value if self.param == "workload.pace_s" else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchState:
        data = dict(data)
        data.pop("min_pace_s", None)
        trials = [Trial(**t) for t in data.pop("trials")]
        probes = [Probe(**p) for p in data.pop("probes")]
        return cls(**data, trials=trials, probes=probes)


class _GeneratorBound(Exception):
    """A trial measured the generator: no verdict on the chain can come from it, nor from a
    faster probe."""


class Bisection:
    """The search over ``state``: ``run_trial(value, repeat)`` runs (or finds) one trial and
    appends it to ``state.trials``; ``save`` persists the state after every step."""

    def __init__(
        self, state: SearchState, run_trial: Callable[[float, int], Trial], save: Callable[[], None], on_event: Callable[[str], None]
    ) -> None:
        self.state = state
        self._trial = run_trial
        self._save = save
        self.on_event = on_event

    def probe(self, value: float, retest: bool = False) -> Probe:
        repeats = self.state.repeats
        base = max((t.repeat + 1 for t in self.state.trials if t.value == value), default=0) if retest else 0
        trials = [self._trial(value, base + r) for r in range(repeats)]
        bound = next((t for t in trials if t.generator_bound), None)
        if bound is not None:
            raise _GeneratorBound(f"{self.state.param}={value:g}: {bound.generator_bound}")
        result = self._judge(value, trials)
        if result.verdict == "undecided":
            trials.append(self._trial(value, base + repeats))
            result = self._judge(value, trials)
            if result.verdict == "undecided":
                result.verdict, result.undecided = "fail", True
                self.state.notes.append(f"{value:g}: still undecided after {len(trials)} trial(s), counted as a failure")
        self.state.probes = [p for p in self.state.probes if p.value != value] + [result]
        self._save()
        self.on_event("probe " + result.line(self.state.param))
        return result

    def _judge(self, value: float, trials: list[Trial]) -> Probe:
        committed = sum(t.committed for t in trials)
        scheduled = sum(t.scheduled for t in trials)
        v, _, _ = verdict(committed, scheduled, self.state.threshold, len(trials))
        why = ""
        if any(t.stopped_early for t in trials):
            v, why = "fail", "stopped early: it could no longer reach the threshold"
        held = next((t.held_back for t in trials if t.held_back), None)
        if held:
            v, why = "fail", f"the chain could not take this pace ({held})"
        indexes = [self.state.trials.index(t) for t in trials]
        lower, upper = wilson(committed, scheduled)
        return Probe(value, v, committed / scheduled if scheduled else 0.0, lower, upper, indexes, committed, scheduled, why=why)

    def _bisect(self, lo: float, hi: float) -> tuple[float, float]:
        while (hi - lo) / hi > self.state.tolerance:
            mid = midpoint(lo, hi)
            if self.probe(mid).verdict == "pass":
                hi = mid
            else:
                lo = mid
            self.state.bracket = [lo, hi]
            self._save()
        return lo, hi

    def _check_above(self, found: float, top: float) -> float | None:
        """Bisection never probes above a pass, so it cannot see a slower pace fail: probe one
        between the answer and the top of the range. A failure there is tried again before it
        is believed; the pace that keeps failing is returned."""
        if top / found < 1 + self.state.tolerance:
            return None
        check = float(f"{math.sqrt(found * top):.6g}")
        if self.probe(check).verdict == "pass":
            return None
        self.on_event(f"non-monotone: {found:g} passed but the slower {check:g} failed; trying it again")
        if self.probe(check, retest=True).verdict == "pass":
            self.state.notes.append(f"{check:g} failed once above the answer {found:g} and passed when tried again")
            return None
        self.state.notes.append(f"non-monotone: {found:g} passes but the slower {check:g} fails, twice")
        return check

    def search(self) -> None:
        try:
            self._search()
        except _GeneratorBound as e:
            state = self.state
            state.status = "generator-bound"
            passed = [p.value for p in state.probes if p.verdict == "pass"]
            state.min_value = min(passed) if passed else None
            at_most = f"; the minimum is at most {state.min_value:g}" if passed else ""
            state.notes.append(f"stopped: the answer is limited by the generator at {e}{at_most}")
            self.on_event(state.notes[-1])

    def _search(self) -> None:
        state = self.state
        lo, hi = state.bracket
        top = hi
        if self.probe(hi).verdict != "pass":
            state.status = "hi-fails"
            state.notes.append(f"hi={hi:g} fails: nothing passes in the range; raise --hi")
            return
        if self.probe(lo).verdict == "pass":
            state.status = "lo-passes"
            state.min_value = lo
            state.notes.append(f"lo={lo:g} already passes: the minimum is at most {lo:g}; lower --lo to look further")
            return
        contradicted = False
        for _ in range(3):  # each contradiction moves the search above the pace that failed
            lo, hi = self._bisect(lo, hi)
            failing = self._check_above(hi, top)
            if failing is None:
                break
            contradicted = True
            lo, hi = failing, top
            state.bracket = [lo, hi]
            self.on_event(f"widening: searching again above {failing:g}")
        state.min_value = hi
        state.status = "non-monotone" if contradicted else "done"  # only now: an interrupted search is not done

"""The search's logic alone: no Ray, no chain, no run folder; trials are a scripted response."""

from __future__ import annotations

import pytest

from loadgen.bisection import Bisection, SearchState, Trial, verdict

pytestmark = pytest.mark.unit


def search(response, lo=0.05, hi=1.6, repeats=1) -> tuple[SearchState, list[float]]:
    state = SearchState("workload.pace_s", lo, hi, 0.85, 0.05, repeats, {}, bracket=[lo, hi])
    calls: list[float] = []

    def run_trial(value: float, repeat: int) -> Trial:
        for t in state.trials:
            if t.value == value and t.repeat == repeat:
                return t
        calls.append(value)
        n = 1_000
        committed = round(response(value, calls.count(value)) * n)
        trial = Trial(value, repeat, "", "", n, committed, committed / n, None, None, None, None, verdict(committed, n, 0.85, 1)[0])
        state.trials.append(trial)
        return trial

    Bisection(state, run_trial, lambda: None, lambda m: None).search()
    return state, calls


def test_bisection_finds_the_crossing_of_a_monotone_response():
    state, calls = search(lambda pace, _: min(1.0, pace / 0.4))  # crosses 0.85 at 0.34
    assert state.status == "done"
    assert state.min_value == pytest.approx(0.34, rel=0.05)
    assert calls[:2] == [1.6, 0.05]
    assert (state.bracket[1] - state.bracket[0]) / state.bracket[1] <= 0.05


def test_pooled_repeats_decide_on_the_wilson_interval():
    # 86% committed: one trial of 1,000 passes, but pooled trials cannot prove ≥ 85% (its 95% lower bound is below)
    state, calls = search(lambda pace, _: 0.86 if pace >= 0.2 else 0.5, lo=0.1, hi=1.6, repeats=2)
    assert state.status == "hi-fails"
    assert calls[:3] == [1.6, 1.6, 1.6]  # two repeats, then one more for the undecided probe
    assert any("undecided" in n for n in state.notes)


def test_a_passing_lo_ends_the_search_at_lo():
    state, calls = search(lambda pace, _: 1.0)
    assert (state.status, state.min_value, calls) == ("lo-passes", 0.05, [1.6, 0.05])

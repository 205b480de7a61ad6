"""The search's logic alone: no Ray, no chain, no run folder; trials are a scripted response."""

from __future__ import annotations

import pytest

from loadgen.study.bisection import Bisection, SearchState, Trial, verdict

pytestmark = pytest.mark.unit


def search(response, lo=0.05, hi=1.6, repeats=1, bound_at=lambda pace: False) -> tuple[SearchState, list[float]]:
    state = SearchState("workload.pace_s", lo, hi, 0.85, 0.05, repeats, {}, bracket=[lo, hi])
    calls: list[float] = []

    def run_trial(value: float, repeat: int) -> Trial:
        for t in state.trials:
            if t.value == value and t.repeat == repeat:
                return t
        calls.append(value)
        n = 1_000
        committed = round(response(value, calls.count(value)) * n)
        bound = "schedule lag p99 0.400 s > 0.100 s" if bound_at(value) else None
        trial = Trial(value, repeat, "", "", n, committed, committed / n, None, None, None, None, verdict(committed, n, 0.85, 1)[0], bound)
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


def test_a_trial_the_generator_limited_stops_the_search_without_blaming_the_chain():
    # the chain passes everywhere; below 0.3 s the generator cannot keep the pace
    state, calls = search(lambda pace, _: 1.0 if pace >= 0.3 else 0.2, bound_at=lambda pace: pace < 0.3)
    assert state.status == "generator-bound"
    assert calls == [1.6, 0.05]  # lo was generator-bound: nothing faster is probed, no failure is bisected on
    assert not any(p.verdict == "fail" for p in state.probes)
    assert state.min_value == 1.6  # what the chain was seen to pass: an upper bound, not the answer
    assert "limited by the generator at workload.pace_s=0.05" in state.notes[-1]


def test_a_generator_bound_trial_mid_search_keeps_what_passed_above_it():
    # lo fails on the chain's account; the first midpoints pass until one lands where the generator fell behind
    state, calls = search(lambda pace, _: min(1.0, pace / 0.4), bound_at=lambda pace: 0.1 < pace < 0.35)
    assert state.status == "generator-bound"
    assert calls == [1.6, 0.05, 0.282843]  # √(0.05·1.6): bound, so the search stops there
    assert state.min_value == 1.6
    assert [p.verdict for p in state.probes] == ["pass", "fail"]


def test_the_answer_is_the_bracket_rounded_up_to_what_it_supports():
    from loadgen.study.answer import rounded_up

    assert rounded_up(0.0237944, 0.0215) == 0.024  # the seven digits from a bracket 2.3 ms wide
    assert rounded_up(0.8, 0.57) == 0.8
    assert rounded_up(0.3445, 0.3281) == 0.35
    assert rounded_up(23.4, 15.0) == 24.0
    assert rounded_up(234.0, 150.0) == 240.0
    for hi, lo in ((0.0237944, 0.0215), (0.3445, 0.3281), (1.234567, 1.2)):
        assert hi <= rounded_up(hi, lo) < hi + (hi - lo)  # on the passing side, within one bracket


def test_the_answer_says_both_probes_with_n_and_interval_and_how_sure_it_is():
    from loadgen.study.answer import answer_of

    state, _ = search(lambda pace, _: min(1.0, pace / 0.4))
    answer = answer_of(state)
    lo, hi = state.bracket
    assert answer.hi == hi and answer.lo == lo and answer.value >= hi
    first, passed, failed, how = answer.lines()
    assert first.startswith(f"minimum workload.pace_s ≈ {answer.value:g}  (between {lo:g}, which fails, and {hi:g}, which passes)")
    assert passed.strip().startswith(f"workload.pace_s={hi:g}: PASS, ") and "95% interval" in passed and "/1,000 committed" in passed
    assert failed.strip().startswith(f"workload.pace_s={lo:g}: FAIL, ")
    assert "without a confidence bound" in how and "--repeats 2" in how
    pooled, _ = search(lambda pace, _: 1.0 if pace >= 0.3 else 0.5, repeats=2)
    assert "at 95% confidence" in answer_of(pooled).lines()[-1]
    # lo passing: a bound from above, said as one
    assert answer_of(search(lambda pace, _: 1.0)[0]).lines()[0].startswith("minimum workload.pace_s ≤ 0.05  (--lo 0.05 already passes")


def test_an_undecided_probe_says_so_and_counts_as_a_failure():
    state, _ = search(lambda pace, _: 0.86 if pace >= 0.2 else 0.5, lo=0.1, hi=1.6, repeats=2)
    (probe,) = state.probes
    assert probe.undecided and probe.verdict == "fail"
    assert probe.line("workload.pace_s").startswith("workload.pace_s=1.6: UNDECIDED → counted as FAIL, 2,580/3,000 committed (86.0%")


def test_a_trial_the_node_held_back_fails_its_probe_whatever_its_ratio():
    held = "schedule lag p99 3.000 s > 0.125 s"

    def run(value: float, repeat: int, state: SearchState) -> Trial:
        trial = Trial(value, repeat, "", "", 1_000, 1_000, 1.0, None, None, None, None, "fail", None, held if value < 0.5 else None)
        state.trials.append(trial)
        return trial

    state = SearchState("workload.pace_s", 0.1, 1.6, 0.85, 0.05, 1, {}, bracket=[0.1, 1.6])
    Bisection(state, lambda v, r: run(v, r, state), lambda: None, lambda m: None).search()
    assert state.status == "done" and 0.5 <= state.min_value <= 0.5 * 1.05
    assert all("the chain could not take this pace" in p.why for p in state.probes if p.value < 0.5)


def test_the_probes_left_shrink_as_the_bracket_does():
    from loadgen.study.bisection import probes_left

    state = SearchState("workload.pace_s", 0.05, 1.6, 0.85, 0.05, 1, {}, bracket=[0.05, 1.6])
    before = probes_left(state)
    assert before >= 2 + 5  # both brackets unchecked, a decade and a half to narrow to 5%
    done, calls = search(lambda pace, _: min(1.0, pace / 0.4))
    assert probes_left(done) == 1  # converged: only the check above is left
    assert len(set(calls)) <= before + 1

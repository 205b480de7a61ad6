"""Actions at fixed times from a phase's start (engine/timed.py), alone: threads and a clock."""

from __future__ import annotations

import time

import pytest

from loadgen.engine.timed import timed_actions
from loadgen.workloads.base import Timed

pytestmark = pytest.mark.unit


def test_an_action_runs_at_its_time_while_the_phase_goes_on():
    at: list[float] = []
    t0 = time.time()
    with timed_actions(t0, (Timed(0.2, lambda: at.append(time.time()), "close"),)) as actions:
        while not at and time.time() < t0 + 10:  # the phase's loop goes on meanwhile
            time.sleep(0.01)
        assert at, "the action never ran while the phase went on"
    assert actions.ran == ["close"]
    assert at[0] - t0 >= 0.2  # not before its time


def test_a_phase_that_ends_first_runs_what_is_not_yet_due_at_once_and_in_order():
    order: list[str] = []
    later = (Timed(30.0, lambda: order.append("second"), "b"), Timed(20.0, lambda: order.append("first"), "a"))
    started = time.monotonic()
    with timed_actions(time.time(), later):
        pass
    assert order == ["first", "second"]  # the protocol's steps are not skipped, nor reordered
    assert time.monotonic() - started < 5


def test_a_phase_that_fails_sends_nothing_more():
    ran: list[str] = []
    with pytest.raises(RuntimeError, match="the phase failed"), timed_actions(time.time(), (Timed(30.0, lambda: ran.append("x"), "x"),)):
        raise RuntimeError("the phase failed")
    assert ran == []


def test_an_action_s_error_is_raised_when_the_phase_ends():
    def refused() -> None:
        raise ValueError("the node refused closeCommitPhase")

    after: list[str] = []
    actions = (Timed(0.0, refused, "close"), Timed(0.05, lambda: after.append("next"), "next"))
    with pytest.raises(ValueError, match="refused closeCommitPhase"), timed_actions(time.time(), actions):
        time.sleep(0.2)
    assert after == []  # a failed step stops the ones after it

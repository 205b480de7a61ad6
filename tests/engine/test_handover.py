"""A stop never falls between the actors' handover of rows and their storing: the first signal
inside a handover is raised as it ends, a second one at once (engine/signals.py)."""

from __future__ import annotations

import os
import signal

import pytest

from loadgen.engine import signals

pytestmark = pytest.mark.unit


@pytest.fixture
def handlers(monkeypatch):
    """loadgen's handlers, on a fresh record of what was received, for this test only."""
    monkeypatch.setattr(signals, "_received", [])
    monkeypatch.setattr(signals, "_raised", [False])
    monkeypatch.setattr(signals, "_handing_over", [0])
    before = {s: signal.getsignal(s) for s in signals.STOPPING_SIGNALS}
    signals.install()
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(10_000):  # the handler runs in this thread between two bytecodes
        pass


def test_a_stop_inside_a_handover_waits_for_its_end(handlers):
    stored = []
    with pytest.raises(signals.Stopped) as stop, signals.handover():
        deliver(signal.SIGTERM)
        stored.append("the rows")  # still reached: the handover is not cut in half
    assert stored == ["the rows"] and stop.value.signum == signal.SIGTERM
    assert signals.exit_code() == 143
    with signals.handover():  # the clean-up's own collection: the stop was raised already
        stored.append("the last rows")
    assert stored == ["the rows", "the last rows"]


def test_a_second_signal_inside_a_handover_stops_at_once(handlers):
    with pytest.raises(signals.Stopped):
        deliver(signal.SIGINT)
    with pytest.raises(signals.Stopped), signals.handover():
        deliver(signal.SIGINT)
        pytest.fail("a second signal waits for nothing")
    assert signals.exit_code() == 130


def test_a_stop_outside_a_handover_is_raised_where_it_comes(handlers):
    with pytest.raises(signals.Stopped):
        deliver(signal.SIGHUP)
        pytest.fail("raised where it came")

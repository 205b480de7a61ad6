"""Coordinator actions a phase runs at fixed times from its start, whatever the workers have
done by then: the study's schedule closes the commit phase at the end of its commit window
while the reveals are already scheduled (workloads/fl_round). They run in order on a thread of
their own, so the phase's collection loop never waits on a coordinator's receipt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loadgen.workloads.base import Timed


class TimedActions:
    def __init__(self, t0: float, actions: tuple[Timed, ...]) -> None:
        self.t0 = t0
        self.actions = sorted(actions, key=lambda a: a.at_s)
        self.errors: list[BaseException] = []
        self.ran: list[str] = []
        self._wake = threading.Event()  # set: whatever is left is due now (or cancelled)
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="timed-actions", daemon=True)

    def _run(self) -> None:
        for action in self.actions:
            self._wake.wait(max(0.0, self.t0 + action.at_s - time.time()))
            if self._cancelled:
                return
            try:
                action.action()
                self.ran.append(action.name)
            except BaseException as e:  # raised on the driver's thread when the phase ends
                self.errors.append(e)
                return

    def start(self) -> None:
        if self.actions:
            self._thread.start()

    def finish(self) -> None:
        """The phase played out: what is not yet due runs now (the protocol's next step is not
        skipped because the workers were quick), then the first error is raised."""
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.errors:
            raise self.errors[0]

    def cancel(self) -> None:
        """The phase failed or was stopped: nothing more is sent."""
        self._cancelled = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)  # an action under way ends with its receipt


@contextmanager
def timed_actions(t0: float, actions: tuple[Timed, ...]) -> Iterator[TimedActions]:
    runner = TimedActions(t0, actions)
    runner.start()
    try:
        yield runner
    except BaseException:
        runner.cancel()
        raise
    runner.finish()

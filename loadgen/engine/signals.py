"""How a command stops when it is told to: SIGTERM (``timeout``, systemd, Kubernetes, ``ray job
stop``) and SIGHUP (a closed terminal) do what Ctrl-C does, and the exit code says which one came.

Each signal raises ``Stopped``, a KeyboardInterrupt, in the main thread: the first where the
command is (a run stops its workers, keeps its rows and writes its summary), a second one inside
that clean-up, which then ends at once (the Parquet parts already written stay readable). The
first waits for the end of a ``handover``: rows the actors handed over are the driver's alone,
and a stop raised between the handover and their storing would lose them. Ray's
``init`` puts handlers of its own on SIGTERM (while it starts: ``sys.exit(15)``; once up: a stack
dump): the first is turned into a stop, and ``install`` is called again once Ray is up.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []
_handing_over = [0]  # nesting depth of ``handover``
_raised = [False]  # the first stop was raised (not still held by a handover)


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stopped(signum: int) -> Stopped:
    """The stop a signal means, recorded as received (the exit code names the first)."""
    _received.append(signum)
    _raised[0] = True
    return Stopped(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    if _handing_over[0] and not _received:
        _received.append(signum)  # raised as the handover ends
        return
    raise stopped(signum)


@contextlib.contextmanager
def handover() -> Iterator[None]:
    """A first stop that comes inside is raised at its end (a second one at once)."""
    _handing_over[0] += 1
    try:
        yield
    finally:
        _handing_over[0] -= 1
    if not _handing_over[0] and _received and not _raised[0]:
        _raised[0] = True
        raise Stopped(_received[0])


def install() -> None:
    """Stops on each of ``STOPPING_SIGNALS``; only the main thread may (Python's rule)."""
    for signum in STOPPING_SIGNALS:
        signal.signal(signum, _stop)


def received() -> int | None:
    """The first stopping signal this process received, if any."""
    return _received[0] if _received else None


def exit_code() -> int:
    """128 + the first signal's number (the shell's convention): 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (received() or signal.SIGINT)

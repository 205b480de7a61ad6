"""How a command stops when it is told to: SIGTERM (``timeout``, systemd, Kubernetes, ``ray job
stop``) and SIGHUP (a closed terminal) do what Ctrl-C does, and the exit code says which one came.

Each signal raises ``Stopped``, a KeyboardInterrupt, in the main thread: the first where the
command is (a run stops its workers, keeps its rows and writes its summary), a second one inside
that clean-up, which then ends at once (the Parquet parts already written stay readable). Ray's
``init`` puts handlers of its own on SIGTERM (while it starts: ``sys.exit(15)``; once up: a stack
dump): the first is turned into a stop, and ``install`` is called again once Ray is up.
"""

from __future__ import annotations

import signal
from types import FrameType

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stopped(signum: int) -> Stopped:
    """The stop a signal means, recorded as received (the exit code names the first)."""
    _received.append(signum)
    return Stopped(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise stopped(signum)


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

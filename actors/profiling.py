"""Where an actor's event loop spends its time, on request: with ``LOADGEN_PROFILE_DIR`` set in
the actors' environment (``benchmarks/e2e.py profile`` sets it), each phase of each sender
actor writes a cProfile of its event-loop thread there (every task the loop runs while the
phase does, not only the phase's own). Off, it costs nothing."""

from __future__ import annotations

import contextlib
import cProfile
import os
import time
from collections.abc import Iterator
from pathlib import Path

PROFILE_DIR_ENV = "LOADGEN_PROFILE_DIR"


@contextlib.contextmanager
def profiled(name: str) -> Iterator[None]:
    folder = os.environ.get(PROFILE_DIR_ENV)
    if not folder:
        yield
        return
    # this thread's CPU, not the wall clock: a send that waits for the GIL or the kernel is not busy
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profile.dump_stats(Path(folder) / f"{name}-{os.getpid()}.prof")

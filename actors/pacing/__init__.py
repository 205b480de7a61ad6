"""How a worker paces its sends, one module a mode (as k6's executors): ``open`` sends at every
slot whatever the node has answered, ``closed`` waits for each answer. Each is a class with
``run(worker, phase, t0)`` over the sender's workers, rows and signing (actors/sender.py)."""

from actors.pacing.closed import ClosedPacing
from actors.pacing.open import OpenPacing

__all__ = ["ClosedPacing", "OpenPacing"]

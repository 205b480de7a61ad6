"""How the sender actors send: the run's settings they act on, as one value that crosses Ray."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sending:
    send_mode: str = "open"  # "open" or "closed" (RunConfig checks it)
    max_unanswered: int = 64  # open mode: a worker's sends awaiting an answer before its next slot waits
    failover: bool = True  # a worker whose endpoint is down sends through another one
    failover_after: int = 3  # unhealthy answers in a row that make an endpoint down
    gap_check_s: float = 3.0  # age after which an accepted transaction not yet in a block is looked up
    confirmations: int = 0  # blocks on top of a block before the watchers read it (chain.confirmations, resolved)
    # where the watchers, the gap checks' nonce reads and the settling look-ups go (chain.watch_endpoints,
    # resolved); the run's endpoints after them, and alone when empty
    watch_endpoints: tuple[str, ...] = ()

"""Block timestamps in seconds, whatever the consensus writes: GoQuorum's raft stamps blocks in
nanoseconds, IBFT/QBFT and clique in seconds. The watcher and the chain audit both read them."""

from __future__ import annotations

RAFT_NANOSECONDS = 10**12  # a seconds timestamp stays below this until the year 33658


def timestamp_seconds(raw: int) -> float:
    return raw / 1e9 if raw > RAFT_NANOSECONDS else float(raw)

"""What a series of runs (a search's trials, a sweep's points) keeps from one run to the next:
the sender actors with their block watchers, the contracts its workload may share, and the
metrics' scrape target.

Starting actors costs seconds per trial (a process each, its imports, a place on a node), and
a deploy costs a block; a search runs dozens of trials against a chain that sits idle
meanwhile. Each run still gets fresh senders (counters, rows, in-flight state: a run's figures
are its own) and fresh keys; only the processes and the contracts carry over. A contract is
shared only by workloads that say each run starts afresh on it (``Workload.shares_contracts``:
fl-round opens a new round); the others deploy their own, so storage a run fills is never the
next one's starting point. A run may leave the next one something ready on the chain (fl-round
opens the next trial's round in the block that ends its own). The scrape target lingers once,
when the series ends, not after every run: a finished run's final counts stay up while the
next one runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

from loadgen.chains.fees import Fees
from loadgen.engine.fleet import SenderFleet
from loadgen.engine.hosting import Host
from loadgen.engine.metrics import MetricsServer
from loadgen.engine.sending import Sending


class Rig:
    def __init__(self, host: Host) -> None:
        self.host = host  # where the actors live, for the whole series
        self.fleet: SenderFleet | None = None
        self.metrics: MetricsServer | None = None
        self._contracts: dict[str, str] = {}  # what was deployed, with what → its address
        self.handover: dict[Hashable, Any] = {}  # see Stage.handover
        self.next_key_offset: int | None = None  # the next run's run.key_offset, when the series foresees it

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fleet is not None:
            self.fleet.shutdown()
            self.fleet = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def metrics_server(self, port: int, addr: str, linger_s: float) -> MetricsServer:
        """The series' scrape target, started by its first run (OSError: the port is taken)."""
        if self.metrics is None:
            self.metrics = MetricsServer(port, addr, linger_s)
        return self.metrics

    def fleet_for(self, run_id: str, chain_id: int, fees: Fees, sending: Sending, spares: int) -> SenderFleet:
        """The fleet of the last run, renewed for this one when it can serve it."""
        if self.host.kind == "process":
            spares = 0  # spares stand in for a lost process; here there is one, loadgen's own
        fleet = self.fleet
        if fleet is not None and (fleet.chain_id, fleet.sending, fleet.spares) == (chain_id, sending, spares):
            fleet.renew(run_id, fees)
            return fleet
        if fleet is not None:
            fleet.shutdown()
        self.fleet = SenderFleet(self.host, run_id, chain_id, fees, sending, spares)
        return self.fleet

    @staticmethod
    def contract_key(chain_id: int, name: str, bytecode: bytes, args: tuple[Any, ...]) -> str:
        return f"{chain_id}:{name}:{hashlib.sha256(bytecode).hexdigest()}:{args!r}"

    def deployed(self, key: str) -> str | None:
        return self._contracts.get(key)

    def remember(self, key: str, address: str) -> None:
        self._contracts[key] = address

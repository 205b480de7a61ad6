"""The phases of one run, played on its fleet: each phase's loop, a collection every second
into the row sinks (the phase's ledger, the Parquet store, the live "now", the metrics), the
progress, and what a phase lost and why. Built once the run is set up, from a frozen
``RunContext`` of what set-up made."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from actors.stats import SenderStats, WatcherLag
from loadgen.config.schema import Experiment
from loadgen.engine import signals
from loadgen.engine.diagnosis import PhaseOutcome, diagnose
from loadgen.engine.fleet import SenderFleet
from loadgen.engine.ledger import PhaseLedger
from loadgen.engine.metrics import RunMetrics
from loadgen.engine.plan import PhaseSpec, RunPlan
from loadgen.engine.preflight import check_phase
from loadgen.engine.progress import Progress, RecentCommits
from loadgen.engine.session import ChainSession
from loadgen.engine.store import RunStore, blocks_table, txpool_table
from loadgen.engine.timed import timed_actions
from loadgen.engine.watchers import BlockRow
from loadgen.workloads import Workload
from loadgen.workloads.base import Payload, Timed

COLLECT_EVERY_S = 1.0


class StopEarly(Exception):
    """The caller's should_stop said the run has nothing more to tell; its words are the reason."""


class RowSink(Protocol):
    """What takes the rows collected from the actors, a table at a time."""

    def add(self, table: pa.Table) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What the run's set-up made, for the phases to play on."""

    experiment: Experiment
    workload: Workload
    session: ChainSession
    plan: RunPlan
    store: RunStore
    fleet: SenderFleet
    metrics: RunMetrics
    addresses: list[str]
    manifest: dict[str, Any]
    records: dict[str, Any]  # what lands in summary.json
    run_id: str
    trial: int
    started: float
    on_event: Callable[[str], None]
    on_progress: Callable[[Progress], None]
    should_stop: Callable[[Progress], str | None]
    fund: Callable[[RunPlan], None]  # tops the workers up for a plan's worst case


class PhaseRunner:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.load = LoadTally()
        self._ready = False
        self._recent = RecentCommits()
        self._ledger = PhaseLedger(-1, "")  # what is stored of the phase that runs (none yet)
        self._phase_blocks: list[BlockRow] = []
        self._totals = SenderStats()  # the actors' counters at the last collection
        self._watcher_lag = WatcherLag(0, 0.0)
        self._stranded = 0  # queued transactions the actors gave up on, over the run so far
        self._sized: dict[str, int] = {}  # phase → the gas limit its transactions got

    def _fleet_ready(self) -> None:
        """The sender actors set up, before the first phase is signed."""
        if self._ready:
            return
        self._ready = True
        fleet = self.ctx.fleet
        if fleet.ready() != self.ctx.addresses:
            raise RuntimeError("the sender actors derived other worker addresses than the driver")
        self.ctx.manifest["sender_actors"] = fleet.actor_ids  # the same ones across a search's trials
        if fleet.replaced:  # lost since the series' last run
            self.ctx.on_event(f"{fleet.replaced} sender actor(s) lost since the last run were replaced")
            self.ctx.records["actors_replaced"] = fleet.replaced
        self.ctx.on_event(f"{len(self.ctx.plan.workers)} workers in {fleet.host.placement(len(fleet.actors), fleet.nodes)}")

    def phase(self, phase: PhaseSpec, payload: Payload, during: tuple[Timed, ...] = ()) -> None:
        run = self.ctx.experiment.run
        self._fleet_ready()
        queued_before = self.ctx.session.queued()  # what earlier phases or runs left stranded stays
        phase = self._preflight(phase, payload)
        for a in self.ctx.fleet.prepare(phase, payload):
            self.ctx.on_event(f"sender actor {a} was lost between phases: a new one takes its workers over")
            self.ctx.records["actors_replaced"] = self.ctx.fleet.replaced
        t0 = time.time() + run.lead_time_s
        self._ledger = PhaseLedger(payload.epoch, phase.name, self.ctx.fleet.bases)
        self._phase_blocks = []
        before = self._totals
        self.ctx.metrics.phase(phase.name, payload.epoch, running=True)
        pending = self.ctx.fleet.run_phase(phase, payload, t0, run.commit_timeout_s, self.ctx.trial)
        with timed_actions(t0, during):
            self._play(phase, payload, t0, pending)
        totals = self.collect(final=True)
        self.ctx.metrics.phase(phase.name, payload.epoch, running=False)
        self.load.add(phase, before, totals, len(self.ctx.fleet.actors))
        stranded = totals.stranded  # the actors count the whole run's
        self.ctx.records.update({"failovers": totals.failovers, "odd_answers": totals.odd_answers, "unconfirmed": totals.unconfirmed})
        left = self.ctx.session.wait_for_empty_pools(stranded=queued_before + stranded - self._stranded)
        self._stranded = stranded
        self._diagnose(phase, payload, totals, before, left)

    def _play(self, phase: PhaseSpec, payload: Payload, t0: float, pending: list) -> None:
        """Collects while the actors play the phase: rows, lost actors, progress, early stops."""
        run = self.ctx.experiment.run
        draining = False
        while pending:
            done, pending = self.ctx.fleet.host.wait(pending, COLLECT_EVERY_S)
            stats = self.collect()
            for a in self.ctx.fleet.lost(done):
                workers = len(self.ctx.plan.workers_of(a))
                ref, spare = self.ctx.fleet.replace(a, self._ledger)
                who = "a spare process" if spare else "a new process"
                self.ctx.on_event(f"sender actor {a} was lost: {who} took its {workers} workers over, from what the chain holds")
                pending.append(ref)
                self.ctx.records["actors_replaced"] = self.ctx.fleet.replaced
            progress = self._progress(phase, payload.epoch, t0, stats)
            if not draining and progress.phase_left_s == 0 and stats.inflight:
                draining = True  # what remains of the phase is waiting for inclusion: up to commit_timeout_s
                self.ctx.on_event(f"{phase.name}: draining {stats.inflight} in flight (up to {run.commit_timeout_s:g} s)…")
            self.ctx.on_progress(progress)
            self.load.busy.append(stats.max_busy)
            reason = self.ctx.should_stop(progress)
            if reason:
                raise StopEarly(reason)

    def _diagnose(self, phase: PhaseSpec, payload: Payload, totals: SenderStats, before: SenderStats, left: int) -> None:
        """Says why, when the nodes lost most of what they had accepted in the phase."""
        led = self._ledger
        gas = [(b.gas_used, b.gas_limit) for b in self._phase_blocks if b.gas_limit]
        outcome = PhaseOutcome(
            phase.name, payload.epoch, led.statuses["committed"] + led.statuses["reverted"] + led.statuses["dropped"],
            led.statuses["dropped"], led.stranded, totals.gaps_recovered - before.gaps_recovered,
            totals.unconfirmed - before.unconfirmed,
            sum(used >= 0.95 * limit for used, limit in gas) / len(gas) if gas else 0.0, left,
        )  # fmt: skip
        diagnosis = diagnose(outcome)
        if diagnosis is not None:
            self.ctx.on_event(f"lost: {diagnosis.line()}")
            self.ctx.records.setdefault("diagnosis", []).append(diagnosis.to_dict())

    def _preflight(self, phase: PhaseSpec, payload: Payload) -> PhaseSpec:
        """The phase with the gas limit its transactions get (see loadgen/preflight.py), checked
        once per phase of the run; workers are topped up when it costs more than planned."""
        known = self._sized.get(phase.name)
        if known is not None:
            return replace(phase, gas_limit=known)
        checked = check_phase(
            self.ctx.session.node, phase, payload, self.ctx.plan.workers, self.ctx.addresses, self.ctx.session.info.block_gas_limit
        )
        for line in checked.lines:
            self.ctx.on_event(line)
        self._sized[phase.name] = checked.phase.gas_limit
        self.ctx.records.setdefault("gas_limits", {})[phase.name] = checked.phase.gas_limit
        if checked.phase.gas_limit > phase.gas_limit and self.ctx.session.fees.worst_case_per_gas():
            self.ctx.fund(replace(self.ctx.plan, phases=tuple(checked.phase if p.name == phase.name else p for p in self.ctx.plan.phases)))
        return checked.phase

    def _progress(self, phase: PhaseSpec, epoch: int, t0: float, stats: SenderStats) -> Progress:
        now = time.time()
        lead = self.ctx.experiment.run.lead_time_s
        phases = self.ctx.plan.phases
        # a plug-in may play a phase that is not in its plan: then none is counted after it
        later = next((phases[i + 1 :] for i, p in enumerate(phases) if p.name == phase.name), ())
        phase_left = max(t0 + phase.duration_s - now, 0.0)
        epochs_after = self.ctx.plan.epochs - epoch - 1
        run_left = phase_left + sum(lead + p.duration_s for p in later) + epochs_after * sum(lead + p.duration_s for p in phases)
        rate, p95 = self._recent.now(now)
        return Progress(
            phase.name, epoch, self.ctx.plan.transactions, stats, now - self.ctx.started, phase_left,
            stats.max_lag_s > 1.0, self.ctx.plan.fixed_slots, self.ctx.workload.interval_s,
            self.ctx.plan.epochs, run_left, rate, p95, self._watcher_lag,
        )  # fmt: skip

    def collect(self, final: bool = False) -> SenderStats:
        sinks: tuple[RowSink, ...] = (self._ledger, self.ctx.store.transactions, self._recent, self.ctx.metrics)
        with signals.handover():  # what the actors handed over is theirs no more: stored before a stop cuts in
            got = self.ctx.fleet.collect()
            for table in got.tables:
                for sink in sinks:
                    sink.add(table)
            self._phase_blocks += got.watched.blocks
            if got.watched.blocks:
                self.ctx.store.blocks.add(blocks_table(self.ctx.run_id, self.ctx.trial, got.watched.blocks))
                self.ctx.metrics.blocks(got.watched.blocks)
        self.ctx.metrics.actor_stats(got.totals, got.watched.lag)
        self.ctx.metrics.endpoints(got.events)
        for e in got.events:
            self.ctx.on_event(e.line())
            self.ctx.records.setdefault("endpoint_events", []).append(
                {"t": _iso(e.t), "endpoint": e.endpoint, "up": e.up, "reason": e.reason}
            )
        self._totals, self._watcher_lag = got.totals, got.watched.lag
        # how far behind the chain the watchers read at worst: the senders decide nothing
        # missing until they caught up, so a large lag shows in the drain, not in the rows
        self.ctx.records["watcher_lag_max_blocks"] = max(self.ctx.records.get("watcher_lag_max_blocks", 0), got.watched.lag.blocks)
        self.ctx.records["watcher_lag_max_s"] = max(self.ctx.records.get("watcher_lag_max_s", 0.0), got.watched.lag.seconds)
        known = self.ctx.records.setdefault("watcher_receipts", {})
        for url, how in got.watched.receipts.items():
            if how == "hash" and known.get(url) != how:
                self.ctx.on_event(
                    f"the block watcher reads {url}'s receipts one transaction at a time (it serves neither "
                    "eth_getBlockReceipts nor GraphQL): it falls behind blocks of thousands; start geth/GoQuorum with --graphql"
                )
            known[url] = how
        for r in got.watched.reorgs:
            self.ctx.on_event(
                f"the chain replaced {r.depth} block(s) from {r.number} that the watcher had read with "
                f"{self.ctx.fleet.sending.confirmations} confirmation(s): their rows may name blocks it no longer has; "
                f"raise chain.confirmations above {r.depth}"
            )
            self.ctx.records.setdefault("reorgs", []).append({"t": _iso(r.t), "block": r.number, "depth": r.depth})
        pools = self.ctx.session.txpools()
        self.ctx.metrics.txpools(pools)
        if pools:
            self.ctx.store.txpool.add(txpool_table(self.ctx.run_id, self.ctx.trial, time.time(), pools))
        if final:
            self.ctx.store.transactions.flush()
            self.ctx.store.blocks.flush()
            self.ctx.store.txpool.flush()
        return got.totals


@dataclass
class LoadTally:
    """What the senders spent on the run's phases, for the verdict on the generator (capacity.py)."""

    busy: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    sent: int = 0
    phase_s: float = 0.0
    actors: int = 0

    def add(self, phase: PhaseSpec, before: SenderStats, after: SenderStats, actors: int) -> None:
        self.actors = actors
        self.cpu_s += after.cpu_s - before.cpu_s
        self.sent += after.sent - before.sent
        self.phase_s += phase.duration_s


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

"""A run: one experiment played once on a chain session by a sender fleet, into a run folder.

``Run.execute`` opens the chain session (the configured endpoints, or an embedded network),
starts the fleet, funds the workers when gas costs something, and lets the workload play: the
workload deploys and coordinates, and hands each phase to ``Run.phase`` (the run is the
workload's ``Stage``). While a phase runs the rows are collected in batches, stored and turned
into metrics; between phases the nodes' transaction pools must be empty before anything else is
sent. The run knows no workload by name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from actors.stats import SenderStats, WatcherLag
from loadgen import __version__
from loadgen import config as config_mod
from loadgen.accounts import MnemonicSource, mnemonic_source
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.config import Experiment
from loadgen.engine import signals
from loadgen.engine.capacity import GeneratorLoad, judge
from loadgen.engine.diagnosis import PhaseOutcome, diagnose
from loadgen.engine.fleet import STOP_GRACE_S, BlockRow, SenderFleet, node_slots
from loadgen.engine.ledger import PhaseLedger
from loadgen.engine.metrics import DEFAULT_PORT, RunMetrics
from loadgen.engine.plan import PhaseSpec, RunPlan
from loadgen.engine.preflight import check_phase
from loadgen.engine.progress import Progress, RecentCommits
from loadgen.engine.ray_cluster import ray_session, reachable, wait_interruptibly
from loadgen.engine.rig import Rig
from loadgen.engine.session import ChainSession
from loadgen.engine.stage import RunStage, worker_addresses
from loadgen.engine.store import RunStore, blocks_table, txpool_table
from loadgen.errors import ConfigError, UserError
from loadgen.report.summary import summarize_file
from loadgen.workloads.base import Payload
from loadgen.workloads.fl_round.protocol import CoordinatorFailed

COLLECT_EVERY_S = 1.0


class _StopEarly(Exception):
    """The caller's should_stop said the run has nothing more to tell."""


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return signals.exit_code()
        return 0 if self.summary["passed"] else 1


class Run:
    def __init__(
        self,
        experiment: Experiment,
        out_dir: Path,
        *,
        ray_address: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        run_id: str | None = None,
        trial: int = 0,
        metrics_port: int | None = DEFAULT_PORT,
        metrics_addr: str = "0.0.0.0",
        metrics_linger_s: float = 2.0,
        mnemonic: MnemonicSource | None = None,
        should_stop: Callable[[Progress], str | None] | None = None,
        rig: Rig | None = None,
    ) -> None:
        self.experiment = experiment
        self.run_id = run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{experiment.name}-{secrets.token_hex(2)}"
        self.dir = out_dir / self.run_id
        self.ray_address = ray_address or os.environ.get("RAY_ADDRESS")
        self.on_progress = on_progress or (lambda p: None)
        self.on_event = on_event or (lambda m: None)
        self.trial = trial
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        self.metrics_linger_s = metrics_linger_s
        self.mnemonic = mnemonic
        self.should_stop = should_stop or (lambda p: None)
        self.rig = rig  # a series' actors and contracts, kept from run to run; else the run has its own
        self.stopped_early: str | None = None
        self.metrics = RunMetrics(self.run_id, experiment.name, experiment.workload.kind, experiment.run.threshold)
        self.store: RunStore | None = None
        self.fleet: SenderFleet | None = None
        self.session: ChainSession | None = None
        self.plan: RunPlan | None = None
        self.records: dict[str, Any] = {}
        self.manifest: dict[str, Any] = {}
        self.started = time.time()
        self.interrupted = False
        self.metrics_url = ""
        self.addresses: list[str] = []
        self.seed = experiment.run.seed
        self.workload = experiment.plugin
        self._stranded = 0
        self._ready = False  # the fleet's workers are set up (before the first phase)
        self._sized: dict[str, int] = {}  # phase name → the gas limit its transactions get
        self._ledger = PhaseLedger(-1, "")  # what is stored of the phase that runs (none yet)
        self._phase_blocks: list[BlockRow] = []  # the blocks seen while it runs
        self._totals = SenderStats()  # the actors' counters at the last collection
        self._watcher_lag = WatcherLag(0, 0.0)
        self._recent = RecentCommits()
        self._load = _LoadTally()  # what the senders spent in the phases, for the generator's verdict

    # the whole run ------------------------------------------------------------------------
    def execute(self) -> RunResult:
        workload = self.workload
        workload.check()
        self._check_local()
        with contextlib.ExitStack() as stack:
            session = stack.enter_context(
                ChainSession(self.experiment.chain, name=self.run_id, mnemonic=self.mnemonic, on_event=self.on_event)
            )
            self.session = session
            self.workload.check_chain(session.info.block_gas_limit)  # before Ray, before any worker
            starts_ray = not ray.is_initialized()  # Ray takes seconds to start and to stop: said before each
            if starts_ray:
                self.on_event(f"joining the Ray cluster at {self.ray_address}…" if self.ray_address else "starting a local Ray…")
            stack.enter_context(ray_session(self.ray_address))
            if starts_ray:
                stack.callback(self.on_event, "stopping Ray" + (" and the devnet…" if session.embedded else "…"))
            plan = self.experiment.plan(session.endpoints, len(node_slots(self.experiment.run.actors)))
            self.plan = plan
            self._check_gas(plan)
            self.metrics.init_series(session.endpoints, [p.name for p in plan.phases])
            self.store = RunStore(self.dir)
            stack.callback(self.store.close)
            if self.rig is None:  # shut down as the run ends, before Ray
                self.rig = stack.enter_context(Rig())
            self._serve_metrics(self.rig, workload.interval_s)
            self.manifest = self._manifest(session, plan)
            self.store.write_json("manifest.json", self.manifest)
            run = self.experiment.run
            sending = replace(run.sending, confirmations=session.confirmations, watch_endpoints=tuple(session.watch_endpoints))
            self.records["confirmations"] = sending.confirmations
            self.records["watch_endpoints"] = session.watch_endpoints
            fleet = self.rig.fleet_for(self.run_id, session.info.chain_id, session.fees, sending)
            self.fleet = fleet
            failed: CoordinatorFailed | None = None
            try:
                fleet.start(plan, session.endpoints, session.source)
                self.addresses = worker_addresses(session, plan, run.key_offset)  # as the actors derive them (checked when ready)
                if session.fees.worst_case_per_gas() or any(p.value_wei for p in plan.phases):
                    self._fund(plan)
                stage = RunStage(
                    session, plan, self.addresses, self.seed, self.store, self.rig, self.manifest, self.records,
                    workload.shares_contracts, self.on_event, self.phase,
                )  # fmt: skip
                workload.play(stage)
            except KeyboardInterrupt:
                self.interrupted = True
                self.on_event("interrupted: stopping the workers and keeping what happened")
                self._stop()
            except CoordinatorFailed as e:
                # the run cannot go on; what it did stays readable, with the step that failed
                failed = e
                self.on_event(f"{e}: stopping the workers and keeping what happened")
                self._stop()
            except _StopEarly:
                self.on_event(f"stopped early: {self.stopped_early}")
                # what was sent lands (or not) as in a run that went on: the rows stay the
                # chain's, and the next run of a series does not start behind this one's load
                self._stop(grace_s=run.commit_timeout_s)
                session.wait_for_empty_pools(stranded=None, timeout_s=run.commit_timeout_s)
            except BaseException as e:
                # keep what happened before the failure readable, then let it surface
                self._stop()
                self.store.write_json("manifest.json", self.manifest | {"ended": _iso(time.time()), "failed": repr(e)})
                raise
            finally:
                fleet.idle()
            self.on_event("writing the run folder…")
            self.store.close()
            summary = summarize_file(self.dir / "transactions.parquet", self.experiment.run.threshold)
            summary |= {"run_id": self.run_id, "rounds": self.records.pop("rounds", [])} | self.records
            summary["interrupted"] = self.interrupted
            if self.interrupted:
                summary["passed"] = False  # a stopped run passes nothing, however well its part went
            self._judge_generator(summary)
            summary["stopped_early"] = self.stopped_early
            if failed is not None:
                summary |= {"passed": False, "failed": {"step": failed.step, "error": failed.words}}
            self.store.write_json("summary.json", summary)
            self.manifest |= {"ended": _iso(time.time()), "interrupted": self.interrupted}
            self.store.write_json("manifest.json", self.manifest)
            if failed is not None:
                raise failed
            return RunResult(self.dir, summary, self.interrupted)

    def _check_local(self) -> None:
        """What can fail on this machine is checked before a devnet or Ray starts: the output
        folder, the metrics port, and whether anything listens at the Ray address."""
        out = self.dir.parent
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file: give a folder for the run folders")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {out}: cannot create it ({e.strerror}): give a writable folder") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise UserError(f"--out {out} is not writable: give a writable folder")
        if self.metrics_port and (self.rig is None or self.rig.metrics is None):  # (a series' own serves already)
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((self.metrics_addr, self.metrics_port))
                except OSError as e:
                    raise self._port_taken(e) from None
        if not ray.is_initialized():
            reachable(self.ray_address)
        if self.mnemonic is None:  # a bad or missing phrase is said before any chain or Ray starts
            mnemonic_source(None if self.experiment.chain.endpoints else DEV_MNEMONIC)

    def _port_taken(self, e: OSError) -> UserError:
        return UserError(
            f"cannot serve metrics on {self.metrics_addr}:{self.metrics_port} ({e.strerror}): "
            "pass --metrics-port with a free port (0 picks one)"
        )

    def _serve_metrics(self, rig: Rig, interval_s: float | None) -> None:
        if self.metrics_port is None:
            return
        try:
            server = rig.metrics_server(self.metrics_port, self.metrics_addr, self.metrics_linger_s)
        except OSError as e:  # taken since the check at the start
            raise self._port_taken(e) from None
        server.show(self.metrics)
        self.metrics_url = f"http://{self.metrics_addr}:{server.port}/metrics"
        self.on_event(f"Prometheus metrics at {self.metrics_url}")
        self.metrics.set_trial(self.trial, interval_s)

    def _check_gas(self, plan: RunPlan) -> None:
        assert self.session is not None
        limit = self.session.info.block_gas_limit
        for phase in plan.phases:
            if phase.gas_fixed and phase.gas_limit > limit:
                raise ConfigError(
                    "chain.gas_limit",
                    f"{phase.name} transactions need {phase.gas_limit:,} gas but a block holds {limit:,}",
                    "lower chain.gas_limit (or the workload's transaction size)",
                )

    def _manifest(self, session: ChainSession, plan: RunPlan) -> dict:
        return {
            "run_id": self.run_id,
            "trial": self.trial,
            "loadgen_version": __version__,
            "ray_version": ray.__version__,
            "python": platform.python_version(),
            "config": config_mod.to_public_dict(self.experiment),
            "endpoints": session.endpoints,
            "embedded_devnet": session.embedded,
            "devnet": session.devnet,
            "chain": session.info.to_dict(),
            "fees": session.fees.to_dict(),
            "keys": f"derived from the mnemonic of {session.source.origin}, path m/44'/60'/0'/0/<index>: "
            "0 the coordinator, 1 + run.key_offset + i worker i",
            # the cluster's control store: whose Ray ran it (a run's private one unless it was told to join)
            "ray_cluster": ray.get_runtime_context().gcs_address,
            "ray_nodes": sorted(set(node_slots(None))),
            "actors": len({w.actor for w in plan.workers}),
            "workers": len(plan.workers),
            "planned_transactions": plan.transactions,
            "started": _iso(self.started),
        }

    def _fund(self, plan: RunPlan) -> None:
        """Every worker needs ether for its worst case: every slot it may use (retries included)
        at its phase's gas limit and fee, plus the value it sends."""
        assert self.session is not None
        per_gas = self.session.fees.worst_case_per_gas()
        worst = max(
            plan.epochs * sum(p.worst_case_slots(w.worker) * (p.gas_limit * per_gas + p.value_wei) for p in plan.phases)
            for w in plan.workers
        )
        funding = self.session.fund(self.addresses, worst)
        self.manifest["funding"] = funding.to_dict()
        self.on_event(
            f"{self.session.fees.tx_type} fees: the funder {funding.funder} topped up {funding.topped_up} of {len(self.addresses)} workers"
        )

    def _stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Workers stop at their next slot; what they had sent gets ``grace_s`` to land, what they
        had not becomes ``unsent`` rows, and all of it is collected before the actors go."""
        if self.fleet is None or not self.fleet.actors:
            return
        self.fleet.stop(grace_s)
        if self.store is not None:
            self._collect(final=True)

    def _fleet_ready(self) -> None:
        """The sender actors set up, before the first phase is signed."""
        assert self.fleet is not None and self.plan is not None
        if self._ready:
            return
        self._ready = True
        fleet = self.fleet
        if fleet.ready() != self.addresses:
            raise RuntimeError("the sender actors derived other worker addresses than the driver")
        self.manifest["sender_actors"] = fleet.actor_ids  # the same ones across a search's trials
        if fleet.replaced:  # lost since the series' last run
            self.on_event(f"{fleet.replaced} sender actor(s) lost since the last run were replaced")
            self.records["actors_replaced"] = fleet.replaced
        self.on_event(f"{len(self.plan.workers)} workers in {len(fleet.actors)} actors on {fleet.ray_nodes} Ray node(s)")

    def phase(self, phase: PhaseSpec, payload: Payload) -> None:
        run = self.experiment.run
        assert self.fleet is not None and self.plan is not None and self.session is not None
        self._fleet_ready()
        queued_before = self.session.queued()  # what earlier phases or runs left stranded stays
        phase = self._preflight(phase, payload)
        for a in self.fleet.prepare(phase, payload):
            self.on_event(f"sender actor {a} was lost between phases: a new one takes its workers over")
            self.records["actors_replaced"] = self.fleet.replaced
        t0 = time.time() + run.lead_time_s
        self._ledger = PhaseLedger(payload.epoch, phase.name, self.fleet.bases)
        self._phase_blocks = []
        before = self._totals
        self.metrics.phase(phase.name, payload.epoch, running=True)
        pending = self.fleet.run_phase(phase, payload, t0, run.commit_timeout_s, self.trial)
        draining = False
        while pending:
            done, pending = wait_interruptibly(pending, COLLECT_EVERY_S)
            stats = self._collect()
            for a in self.fleet.lost(done):
                workers = len(self.plan.workers_of(a))
                self.on_event(f"sender actor {a} was lost: a new one takes its {workers} workers over, from what the chain holds")
                pending.append(self.fleet.replace(a, self._ledger))
                self.records["actors_replaced"] = self.fleet.replaced
            progress = self._progress(phase, payload.epoch, t0, stats)
            if not draining and progress.phase_left_s == 0 and stats.inflight:
                draining = True  # what remains of the phase is waiting for inclusion: up to commit_timeout_s
                self.on_event(f"{phase.name}: draining {stats.inflight} in flight (up to {run.commit_timeout_s:g} s)…")
            self.on_progress(progress)
            self._load.busy.append(stats.max_busy)
            reason = self.should_stop(progress)
            if reason:
                self.stopped_early = reason
                raise _StopEarly
        totals = self._collect(final=True)
        self.metrics.phase(phase.name, payload.epoch, running=False)
        self._load.add(phase, before, totals, len(self.fleet.actors))
        stranded = totals.stranded  # the actors count the whole run's
        self.records |= {"failovers": totals.failovers, "odd_answers": totals.odd_answers, "unconfirmed": totals.unconfirmed}
        left = self.session.wait_for_empty_pools(stranded=queued_before + stranded - self._stranded)
        self._stranded = stranded
        self._diagnose(phase, payload, totals, before, left)

    def _judge_generator(self, summary: dict[str, Any]) -> None:
        """Marks a run whose senders could not keep their schedule (loadgen/capacity.py): its
        commit ratio measured the generator, not the chain."""
        load = self._load
        verdict = judge(
            GeneratorLoad(
                summary["schedule_lag_first_p99_s"],
                self.workload.interval_s,
                tuple(load.busy),
                load.actors,
                load.cpu_s,
                load.sent,
                load.phase_s,
                summary["answer_p99_s"],
                self.experiment.run.sending.send_mode == "closed",
            )
        )
        summary["generator_bound"] = verdict.bound
        summary["generator"] = verdict.to_dict()
        self.metrics.generator(verdict.bound)
        if verdict.reason:
            self.on_event(verdict.reason)

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
            self.on_event(f"lost: {diagnosis.line()}")
            self.records.setdefault("diagnosis", []).append(diagnosis.to_dict())

    def _preflight(self, phase: PhaseSpec, payload: Payload) -> PhaseSpec:
        """The phase with the gas limit its transactions get (see loadgen/preflight.py), checked
        once per phase of the run; workers are topped up when it costs more than planned."""
        assert self.plan is not None and self.session is not None
        known = self._sized.get(phase.name)
        if known is not None:
            return replace(phase, gas_limit=known)
        checked = check_phase(self.session.w3, phase, payload, self.plan.workers, self.addresses, self.session.info.block_gas_limit)
        for line in checked.lines:
            self.on_event(line)
        self._sized[phase.name] = checked.phase.gas_limit
        self.records.setdefault("gas_limits", {})[phase.name] = checked.phase.gas_limit
        if checked.phase.gas_limit > phase.gas_limit and self.session.fees.worst_case_per_gas():
            self._fund(replace(self.plan, phases=tuple(checked.phase if p.name == phase.name else p for p in self.plan.phases)))
        return checked.phase

    def _progress(self, phase: PhaseSpec, epoch: int, t0: float, stats: SenderStats) -> Progress:
        assert self.plan is not None
        now = time.time()
        lead = self.experiment.run.lead_time_s
        phases = self.plan.phases
        # a plug-in may play a phase that is not in its plan: then none is counted after it
        later = next((phases[i + 1 :] for i, p in enumerate(phases) if p.name == phase.name), ())
        phase_left = max(t0 + phase.duration_s - now, 0.0)
        epochs_after = self.plan.epochs - epoch - 1
        run_left = phase_left + sum(lead + p.duration_s for p in later) + epochs_after * sum(lead + p.duration_s for p in phases)
        rate, p95 = self._recent.now(now)
        return Progress(
            phase.name, epoch, self.plan.transactions, stats, now - self.started, phase_left,
            stats.max_lag_s > 1.0, self.plan.fixed_slots, self.workload.interval_s,
            self.plan.epochs, run_left, rate, p95, self._watcher_lag,
        )  # fmt: skip

    def _collect(self, final: bool = False) -> SenderStats:
        assert self.fleet is not None and self.store is not None and self.session is not None
        got = self.fleet.collect()
        for table in got.tables:
            self._ledger.add(table)
            self.store.transactions.append(table)
            self._recent.add(table)
            self.metrics.rows(table)
        self.metrics.actor_stats(got.totals, got.lag)
        self.metrics.endpoints(got.events)
        for e in got.events:
            self.on_event(e.line())
            self.records.setdefault("endpoint_events", []).append({"t": _iso(e.t), "endpoint": e.endpoint, "up": e.up, "reason": e.reason})
        self._totals, self._watcher_lag = got.totals, got.lag
        # how far behind the chain the watchers read at worst: the senders decide nothing
        # missing until they caught up, so a large lag shows in the drain, not in the rows
        self.records["watcher_lag_max_blocks"] = max(self.records.get("watcher_lag_max_blocks", 0), got.lag.blocks)
        self.records["watcher_lag_max_s"] = max(self.records.get("watcher_lag_max_s", 0.0), got.lag.seconds)
        known = self.records.setdefault("watcher_receipts", {})
        for url, how in got.receipts.items():
            if how == "hash" and known.get(url) != how:
                self.on_event(
                    f"the block watcher reads {url}'s receipts one transaction at a time (it serves neither "
                    "eth_getBlockReceipts nor GraphQL): it falls behind blocks of thousands; start geth/GoQuorum with --graphql"
                )
            known[url] = how
        for r in got.reorgs:
            self.on_event(
                f"the chain replaced {r.depth} block(s) from {r.number} that the watcher had read with "
                f"{self.fleet.sending.confirmations} confirmation(s): their rows may name blocks it no longer has; "
                f"raise chain.confirmations above {r.depth}"
            )
            self.records.setdefault("reorgs", []).append({"t": _iso(r.t), "block": r.number, "depth": r.depth})
        self._phase_blocks += got.blocks
        if got.blocks:
            self.store.blocks.append(blocks_table(self.run_id, self.trial, got.blocks))
            self.metrics.blocks(got.blocks)
        pools = self.session.txpools()
        self.metrics.txpools(pools)
        if pools:
            self.store.txpool.append(txpool_table(self.run_id, self.trial, time.time(), pools))
        if final:
            self.store.transactions.flush()
            self.store.blocks.flush()
            self.store.txpool.flush()
        return got.totals


@dataclass
class _LoadTally:
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

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from loadgen import __version__
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.common.errors import CoordinatorFailed, UserError
from loadgen.config import schema as config_mod
from loadgen.config.accounts import MnemonicSource, mnemonic_source
from loadgen.config.schema import Experiment
from loadgen.engine import signals
from loadgen.engine.capacity import GeneratorLoad, judge
from loadgen.engine.fleet import STOP_GRACE_S, SenderFleet
from loadgen.engine.hosting import Host, hosted, kind_for, ray_running
from loadgen.engine.metrics import DEFAULT_PORT, RunMetrics
from loadgen.engine.phases import LoadTally, PhaseRunner, RunContext, StopEarly
from loadgen.engine.plan import RunPlan
from loadgen.engine.progress import Progress
from loadgen.engine.ray_cluster import reachable
from loadgen.engine.rig import Rig
from loadgen.engine.session import ChainSession
from loadgen.engine.stage import RunStage, worker_addresses
from loadgen.engine.store import RunStore
from loadgen.engine.verdict import EXIT_CODES, Offered, judge_run
from loadgen.report.summary import summarize_file


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return signals.exit_code()
        return EXIT_CODES[self.summary["verdict"]]


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
        self.runner: PhaseRunner | None = None  # once set up

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
            actors = self.experiment.run.actors
            plan = self.experiment.plan(session.endpoints, actors or 1)  # what decides the host
            host = self.rig.host if self.rig is not None else stack.enter_context(own_host(self, plan, session.embedded))
            if (n_actors := len(host.node_slots(actors))) != (actors or 1):
                plan = self.experiment.plan(session.endpoints, n_actors)
            self.plan = plan
            plan.check_gas(session.info.block_gas_limit)
            self.metrics.init_series(session.endpoints, [p.name for p in plan.phases])
            self.store = RunStore(self.dir)
            stack.callback(self.store.close)
            if self.rig is None:  # shut down as the run ends, before its host
                self.rig = stack.enter_context(Rig(host))
            self._serve_metrics(self.rig, workload.interval_s)
            self.manifest = run_manifest(self, session, plan, host)
            self.store.write_json("manifest.json", self.manifest)
            run = self.experiment.run
            sending = replace(run.sending, confirmations=session.confirmations, watch_endpoints=tuple(session.watch_endpoints))
            self.records["confirmations"] = sending.confirmations
            self.records["watch_endpoints"] = session.watch_endpoints
            fleet = self.rig.fleet_for(self.run_id, session.info.chain_id, session.fees, sending, run.spare_actors)
            self.fleet = fleet
            failed: CoordinatorFailed | None = None
            try:
                fleet.start(plan, session.endpoints, session.source)
                self.addresses = worker_addresses(session, plan, run.key_offset)  # as the actors derive them (checked when ready)
                if session.fees.worst_case_per_gas() or any(p.value_wei for p in plan.phases):
                    self._fund(plan, session)
                context = RunContext(
                    self.experiment, workload, session, plan, self.store, fleet, self.metrics, self.addresses, self.manifest,
                    self.records, self.run_id, self.trial, self.started, self.on_event, self.on_progress, self.should_stop,
                    partial(self._fund, session=session),
                )  # fmt: skip
                self.runner = runner = PhaseRunner(context)
                stage = RunStage(
                    session, plan, self.addresses, self.seed, self.store, self.rig, self.manifest, self.records,
                    workload.shares_contracts, self.on_event, runner.phase,
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
            except StopEarly as e:
                self.stopped_early = str(e)
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
            summary["stopped_early"] = self.stopped_early
            self._judge(summary)
            if failed is not None:
                summary |= {"passed": False, "verdict": "FAIL", "failed": {"step": failed.step, "error": failed.words}}
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
        kind_for(self.experiment.run, self.ray_address, None)  # refuses process hosting beside a named cluster
        if not ray_running():
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

    def _fund(self, plan: RunPlan, session: ChainSession) -> None:
        """Every worker needs ether for its worst case: every slot it may use (retries included)
        at its phase's gas limit and fee, plus the value it sends."""
        per_gas = session.fees.worst_case_per_gas()
        worst = max(
            plan.epochs * sum(p.worst_case_slots(w.worker) * (p.gas_limit * per_gas + p.value_wei) for p in plan.phases)
            for w in plan.workers
        )
        funding = session.fund(self.addresses, worst)
        self.manifest["funding"] = funding.to_dict()
        self.on_event(
            f"{session.fees.tx_type} fees: the funder {funding.funder} topped up {funding.topped_up} of {len(self.addresses)} workers"
        )

    def _stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Workers stop at their next slot; what they had sent gets ``grace_s`` to land, what they
        had not becomes ``unsent`` rows, and all of it is collected before the actors go."""
        if self.fleet is None or not self.fleet.actors:
            return
        self.fleet.stop(grace_s)
        if self.runner is not None:
            self.runner.collect(final=True)

    def _judge(self, summary: dict[str, Any]) -> None:
        """The verdict (engine/verdict.py): a run that did not offer its plan, its senders
        behind their schedule or out of CPU (engine/capacity.py), is INVALID, never PASS; an
        interrupted one passes nothing, however well its part went."""
        load = self.runner.load if self.runner is not None else LoadTally()
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
                self.experiment.run.max_lag_s,
            )
        )
        summary["generator_bound"] = verdict.bound
        summary["generator"] = verdict.to_dict()
        self.metrics.generator(verdict.bound)
        judgement = judge_run(
            ratio_passed=summary["passed"],
            interrupted=self.interrupted,
            stopped_early=self.stopped_early is not None,
            generator=verdict,
            offered=Offered(summary["planned_tps"], summary["offered_tps"]),
        )
        summary["verdict"] = judgement.verdict
        summary["passed"] = judgement.verdict == "PASS"
        if judgement.verdict == "INVALID":
            summary["invalid"] = {"cause": judgement.cause, "reasons": list(judgement.reasons)}
            for reason in judgement.reasons:
                self.on_event(f"invalid: {reason}")


@contextlib.contextmanager
def own_host(run: Run, plan: RunPlan, embedded: bool) -> Iterator[Host]:
    """A run's own host (not a series'): its process, or Ray (joined, or started and stopped by
    the run)."""
    kind = kind_for(run.experiment.run, run.ray_address, plan)
    starts_ray = kind == "ray" and not ray_running()  # Ray takes seconds to start and to stop: said before each
    if starts_ray:
        run.on_event(f"joining the Ray cluster at {run.ray_address}…" if run.ray_address else "starting a local Ray…")
    with hosted(kind, run.ray_address) as host:
        try:
            yield host
        finally:
            stopping = [what for what, yes in (("Ray", starts_ray), ("the devnet", embedded)) if yes]
            if stopping:
                run.on_event(f"stopping {' and '.join(stopping)}…")


def run_manifest(run: Run, session: ChainSession, plan: RunPlan, host: Host) -> dict:
    """What manifest.json says of a run as it starts: its versions, config, chain, keys' origin
    and where it ran (no key, no mnemonic)."""
    return {
        "run_id": run.run_id,
        "trial": run.trial,
        "loadgen_version": __version__,
        "python": platform.python_version(),
        "config": config_mod.to_public_dict(run.experiment),
        "endpoints": session.endpoints,
        "embedded_devnet": session.embedded,
        "devnet": session.devnet,
        "chain": session.info.to_dict(),
        "fees": session.fees.to_dict(),
        "keys": f"derived from the mnemonic of {session.source.origin}, path m/44'/60'/0'/0/<index>: "
        "0 the coordinator, 1 + run.key_offset + i worker i",
        **host.where(),
        "actors": len({w.actor for w in plan.workers}),
        "workers": len(plan.workers),
        "planned_transactions": plan.transactions,
        "started": _iso(run.started),
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

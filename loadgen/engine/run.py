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
import logging
import os
import platform
import secrets
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from loadgen import __version__
from loadgen import config as config_mod
from loadgen.accounts import MnemonicSource, derive_account, mnemonic_source
from loadgen.chains.chain import send_transaction
from loadgen.chains.contracts import Artifact, calldata, deploy
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.fees import Fees
from loadgen.config import Experiment
from loadgen.engine import signals
from loadgen.engine.capacity import GeneratorLoad, judge
from loadgen.engine.diagnosis import PhaseOutcome, diagnose
from loadgen.engine.fleet import STOP_GRACE_S, BlockRow, SenderFleet, node_slots
from loadgen.engine.ledger import PhaseLedger
from loadgen.engine.metrics import DEFAULT_PORT, RunMetrics
from loadgen.engine.plan import PhaseSpec, RunPlan, key_index
from loadgen.engine.preflight import check_phase
from loadgen.engine.rig import Rig
from loadgen.engine.session import ChainSession
from loadgen.engine.store import RunStore, blocks_table, txpool_table
from loadgen.errors import ConfigError, UserError
from loadgen.report.summary import summarize_file
from loadgen.workloads.base import Payload
from loadgen.workloads.fl_round.protocol import CoordinatorFailed

COLLECT_EVERY_S = 1.0
RECENT_S = 5.0  # what the live display calls "now"


@dataclass
class Progress:
    """A snapshot for the live display, summed over actors."""

    phase: str
    epoch: int  # from 0, as in the rows and in summary.json's rounds
    planned: int  # the whole run's: every phase of every epoch
    stats: dict[str, float]  # the actors' counters, over the whole run so far
    elapsed_s: float
    phase_left_s: float  # until the phase's last scheduled send
    lagging: bool = False
    fixed_slots: bool = False  # a refused slot is lost rather than retried (rate-driven workloads)
    interval_s: float | None = None  # a worker's time between two slots, when it is one number
    epochs: int = 1
    run_left_s: float = 0.0  # until the run's last scheduled send: the rest of this phase and every later one
    tx_per_s: float = 0.0  # committed per second over the last RECENT_S
    latency_p95_s: float | None = None  # of what committed in the last RECENT_S; None: nothing did

    @property
    def done(self) -> int:
        """Planned transactions that reached their end. A refused one is sent again (one more
        row), unless slots are fixed: then the refusal is its end."""
        s = self.stats
        ended = s.get("committed", 0) + s.get("reverted", 0) + s.get("dropped", 0) + s.get("unsent", 0)
        if self.fixed_slots:
            ended += s.get("rejected", 0)
        return min(int(ended), self.planned)

    @property
    def slow_answers(self) -> bool:
        """The node takes longer to answer a send than a worker waits between two: a closed-loop
        tool would fall behind here; an open one keeps its schedule."""
        return self.interval_s is not None and self.stats.get("max_answer_s", 0.0) > self.interval_s


class RecentCommits:
    """What committed in the last ``window_s``, by when its block was seen: the rate and the
    latency the live display shows as "now" (the run's whole percentiles come at the end)."""

    def __init__(self, window_s: float = RECENT_S) -> None:
        self.window_s = window_s
        self._included = np.empty(0)
        self._latency = np.empty(0)

    def add(self, table: pa.Table) -> None:
        committed = table.filter(pc.equal(table.column("status"), "committed"))
        if committed.num_rows:
            included = committed.column("t_included").to_numpy(zero_copy_only=False).astype(float)
            latency = committed.column("latency_s").to_numpy(zero_copy_only=False).astype(float)
            self._included = np.concatenate([self._included, included])
            self._latency = np.concatenate([self._latency, latency])

    def now(self, t: float) -> tuple[float, float | None]:
        """Committed per second and the latency p95 over the window that ends at ``t``."""
        keep = self._included >= t - self.window_s  # rows come in batches, not in inclusion order
        self._included, self._latency = self._included[keep], self._latency[keep]
        latency = self._latency[~np.isnan(self._latency)]
        return self._included.size / self.window_s, float(np.percentile(latency, 95)) if latency.size else None


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


RAY_CONNECT_S = 5.0
SIGNAL_SLICE_S = 0.05


def _wait_interruptibly(refs: list[ray.ObjectRef], timeout_s: float) -> tuple[list[ray.ObjectRef], list[ray.ObjectRef]]:
    """ray.wait for all of ``refs`` up to ``timeout_s``, in slices: a signal's handler runs only
    between two of them (ray.wait holds the main thread in C++), and a stop must reach the
    senders at once."""
    deadline = time.monotonic() + timeout_s
    done: list[ray.ObjectRef] = []
    pending = refs
    while pending:
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=min(SIGNAL_SLICE_S, max(deadline - time.monotonic(), 0)))
        done += ready
        if time.monotonic() >= deadline:
            break
    return done, pending


def reachable(address: str | None) -> None:
    """Refuses a Ray address nothing listens at, in seconds (ray.init would wait for minutes,
    printing its own retries): ``auto`` is the cluster last started on this machine, which may
    have stopped since. None is a private local Ray, started by the run."""
    if not address:
        return
    if address == "auto":
        from ray._private.services import find_bootstrap_address

        found = find_bootstrap_address(None)
        if not found:
            raise UserError("--ray-address auto: no Ray cluster was started on this machine; `ray start --head` starts one")
        address = found
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r}: write it as host:port (the head node's GCS, usually port 6379), or auto")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_S).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise UserError(f"no Ray cluster answers at {address} ({why}): check --ray-address or $RAY_ADDRESS") from None


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Joins ``address``, or starts a private local Ray (never a cluster that happens to run on
    the machine: that is ``auto``), unless Ray is already up; leaves as it found."""
    if ray.is_initialized():
        yield
        return
    # Token authentication stays on; only its notice is too loud for a command-line tool.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    with _token_auth(address):
        try:
            with contextlib.nullcontext() if address else _apart_from_our_group():
                ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING, configure_logging=True)
            if threading.current_thread() is threading.main_thread():
                signals.install()  # ray.init put its own SIGTERM handler in place of ours
        except (ConnectionError, ValueError) as e:
            raise UserError(
                f"cannot connect to Ray at {address}: {e} (a cluster with token authentication needs its token: "
                "~/.ray/auth_token, $RAY_AUTH_TOKEN or $RAY_AUTH_TOKEN_PATH; `ray get-auth-token` on the head prints it)"
            ) from None
        try:
            yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _apart_from_our_group() -> Iterator[None]:
    """Starts what runs inside in a process group of its own: a signal sent to loadgen's group
    (``timeout``, a terminal's SIGHUP) then reaches loadgen, which stops the run and its local
    Ray in order, and not Ray's processes, which would die under the run. Not possible when
    loadgen leads its group (a shell's job): Ray's processes ignore SIGINT there by themselves."""
    ours = os.getpgrp()
    if ours == os.getpid():
        yield
        return
    os.setpgid(0, 0)
    try:
        yield
    finally:
        os.setpgid(0, ours)


def _asks_for_a_token(address: str) -> bool:
    """Whether the cluster at ``address`` authenticates by token. Asked first because a driver
    with token authentication on also demands the token of the cluster's own calls to it: a
    cluster without it (``ray.cluster_utils``, ``RAY_AUTH_MODE=disabled``) then takes the
    driver for dead and cancels every actor it creates."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # (a compiled module without stubs)
    from ray.exceptions import AuthenticationError

    try:
        GcsClient(address=address)  # asks the cluster's id: refused without the right token
    except AuthenticationError:
        return True
    except Exception:  # anything else is for ray.init to say
        return False
    return False


@contextlib.contextmanager
def _token_auth(address: str | None) -> Iterator[None]:
    """Sends this machine's Ray token to a cluster named by its address that asks for one. Ray
    turns token authentication on by itself for a cluster it finds (``auto``) but never for an
    explicit address, while ``ray start --head`` turns it on whenever a token is at hand (any
    earlier local Ray leaves one in ~/.ray): the documented ``--ray-address HEAD:6379`` was
    refused. RAY_AUTH_MODE, when set, decides."""
    if address in (None, "auto") or "RAY_AUTH_MODE" in os.environ or not _asks_for_a_token(address):
        yield
        return
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        yield
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)  # this process's next local Ray decides afresh


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
        self._totals: dict[str, float] = {}  # the actors' counters at the last collection
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
                self.addresses = self._addresses(run.key_offset)  # as the actors derive them (checked when they are ready)
                if session.fees.worst_case_per_gas() or any(p.value_wei for p in plan.phases):
                    self._fund(plan)
                workload.play(self)
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

    # the workload's stage ---------------------------------------------------------------------
    # (``execute`` sets the session, plan, store and fleet before the workload plays)
    @property
    def w3(self) -> Web3:
        assert self.session is not None
        return self.session.w3

    @property
    def coordinator(self) -> LocalAccount:
        assert self.session is not None
        return self.session.coordinator

    @property
    def fees(self) -> Fees:
        assert self.session is not None
        return self.session.fees

    @property
    def phases(self) -> tuple[PhaseSpec, ...]:
        assert self.plan is not None
        return self.plan.phases

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        assert self.store is not None
        key = self._contract_key(artifact, args)
        known = self.rig.deployed(key) if self.rig and key else None  # (the rig is the run's by now)
        address = Web3.to_checksum_address(known) if known else None
        if address is not None and self.w3.eth.get_code(address):
            self.on_event(f"{artifact.name} at {address}, deployed by an earlier run of the series")
            contract = self.w3.eth.contract(address=address, abi=artifact.abi)
        else:
            self.on_event(f"deploying {artifact.name}…")
            contract = deploy(self.w3, self.coordinator, artifact, *args, fees=self.fees)
            if self.rig and key:
                self.rig.remember(key, contract.address)
        return self._recorded(artifact, contract)

    def deployed_at(self, artifact: Artifact, address: str, field: str) -> Contract:
        checksummed = Web3.to_checksum_address(address)
        code = bytes(self.w3.eth.get_code(checksummed))
        if code != artifact.runtime:
            what = "no code" if not code else f"code that is not this loadgen's {artifact.name}"
            fix = "remove it to deploy one, or give one that manifest.json's contracts name"
            raise ConfigError(field, f"{checksummed} holds {what} on this chain", fix)
        self.on_event(f"{artifact.name} at {checksummed}, from {field}")
        return self._recorded(artifact, self.w3.eth.contract(address=checksummed, abi=artifact.abi))

    def _recorded(self, artifact: Artifact, contract: Contract) -> Contract:
        assert self.store is not None
        self.manifest.setdefault("contracts", {})[artifact.name] = contract.address
        self.store.write_json("manifest.json", self.manifest)
        return contract

    def _contract_key(self, artifact: Artifact, args: tuple[Any, ...]) -> str | None:
        """What names a contract the series' runs may share (see Rig); None: this run's own."""
        if self.rig is None or not self.workload.shares_contracts or self.session is None:
            return None
        return Rig.contract_key(self.session.info.chain_id, artifact.name, artifact.bytecode, args)

    def transact(self, contract: Contract, function: str, *args: Any) -> TxReceipt:
        data = calldata(contract, function, *args)
        receipt = send_transaction(self.w3, self.coordinator, to=contract.address, data=data, fees=self.fees)
        if receipt["status"] != 1:
            raise UserError(f"the set-up call {function} on {contract.address} reverted (transaction {receipt['transactionHash'].hex()})")
        return receipt

    @property
    def handover(self) -> dict[Hashable, Any]:
        assert self.rig is not None
        return self.rig.handover

    def next_addresses(self) -> list[str] | None:
        assert self.rig is not None
        offset = self.rig.next_key_offset
        return None if offset is None else self._addresses(offset)

    def _addresses(self, key_offset: int) -> list[str]:
        """The workers' accounts with keys from ``key_offset`` on (0.3 ms a key)."""
        assert self.session is not None and self.plan is not None
        return [derive_account(self.session.source, key_index(key_offset, w.worker)).address for w in self.plan.workers]

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

    def event(self, message: str) -> None:
        self.on_event(message)

    def record(self, key: str, value: Any) -> None:
        self.records[key] = value

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
        before = dict(self._totals)
        self.metrics.phase(phase.name, payload.epoch, running=True)
        pending = self.fleet.run_phase(phase, payload, t0, run.commit_timeout_s, self.trial)
        draining = False
        while pending:
            done, pending = _wait_interruptibly(pending, COLLECT_EVERY_S)
            stats = self._collect()
            for a in self.fleet.lost(done):
                workers = len(self.plan.workers_of(a))
                self.on_event(f"sender actor {a} was lost: a new one takes its {workers} workers over, from what the chain holds")
                pending.append(self.fleet.replace(a, self._ledger))
                self.records["actors_replaced"] = self.fleet.replaced
            progress = self._progress(phase, payload.epoch, t0, stats)
            if not draining and progress.phase_left_s == 0 and stats.get("inflight", 0):
                draining = True  # what remains of the phase is waiting for inclusion: up to commit_timeout_s
                self.on_event(f"{phase.name}: draining {int(stats['inflight'])} in flight (up to {run.commit_timeout_s:g} s)…")
            self.on_progress(progress)
            self._load.busy.append(stats.get("max_busy", 0.0))
            reason = self.should_stop(progress)
            if reason:
                self.stopped_early = reason
                raise _StopEarly
        totals = self._collect(final=True)
        self.metrics.phase(phase.name, payload.epoch, running=False)
        self._load.add(phase, before, totals, len(self.fleet.actors))
        stranded = int(totals.get("stranded", 0))  # the actors count the whole run's
        for key in ("failovers", "odd_answers", "unconfirmed"):
            self.records[key] = int(totals.get(key, 0))
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

    def _diagnose(self, phase: PhaseSpec, payload: Payload, totals: dict[str, float], before: dict[str, float], left: int) -> None:
        """Says why, when the nodes lost most of what they had accepted in the phase."""
        led = self._ledger
        gas = [(b.gas_used, b.gas_limit) for b in self._phase_blocks if b.gas_limit]
        outcome = PhaseOutcome(
            phase.name, payload.epoch, led.statuses["committed"] + led.statuses["reverted"] + led.statuses["dropped"],
            led.statuses["dropped"], led.stranded, int(totals.get("gaps_recovered", 0) - before.get("gaps_recovered", 0)),
            int(totals.get("unconfirmed", 0) - before.get("unconfirmed", 0)),
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
        checked = check_phase(self.w3, phase, payload, self.plan.workers, self.addresses, self.session.info.block_gas_limit)
        for line in checked.lines:
            self.on_event(line)
        self._sized[phase.name] = checked.phase.gas_limit
        self.records.setdefault("gas_limits", {})[phase.name] = checked.phase.gas_limit
        if checked.phase.gas_limit > phase.gas_limit and self.session.fees.worst_case_per_gas():
            self._fund(replace(self.plan, phases=tuple(checked.phase if p.name == phase.name else p for p in self.plan.phases)))
        return checked.phase

    def _progress(self, phase: PhaseSpec, epoch: int, t0: float, stats: dict[str, float]) -> Progress:
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
            stats.get("max_lag_s", 0.0) > 1.0, self.plan.fixed_slots, self.workload.interval_s,
            self.plan.epochs, run_left, rate, p95,
        )  # fmt: skip

    def _collect(self, final: bool = False) -> dict[str, float]:
        assert self.fleet is not None and self.store is not None and self.session is not None
        got = self.fleet.collect()
        for table in got.tables:
            self._ledger.add(table)
            self.store.transactions.append(table)
            self._recent.add(table)
            self.metrics.rows(table)
        self.metrics.actor_stats(got.totals)
        self.metrics.endpoints(got.events)
        for e in got.events:
            self.on_event(e.line())
            self.records.setdefault("endpoint_events", []).append({"t": _iso(e.t), "endpoint": e.endpoint, "up": e.up, "reason": e.reason})
        self._totals = got.totals
        # how far behind the chain the watchers read at worst: the senders decide nothing
        # missing until they caught up, so a large lag shows in the drain, not in the rows
        for key, worst in (("watcher_lag_blocks", "watcher_lag_max_blocks"), ("watcher_lag_s", "watcher_lag_max_s")):
            self.records[worst] = max(self.records.get(worst, 0), got.totals.get(key, 0))
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

    def add(self, phase: PhaseSpec, before: dict[str, float], after: dict[str, float], actors: int) -> None:
        self.actors = actors
        self.cpu_s += after.get("cpu_s", 0.0) - before.get("cpu_s", 0.0)
        self.sent += int(after.get("sent", 0) - before.get("sent", 0))
        self.phase_s += phase.duration_s


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

"""A run: the hub that owns the chain, the Ray actors, the plan and the run's folder.

``Run.execute`` resolves the chain (the configured endpoints, or an embedded devnet), starts
one block watcher per Ray node and the sender actors, deploys the contracts, plays the
workload phase by phase (for ``fl-round``: the coordinator opens a round, the commit phase,
the coordinator closes it, the reveal phase, the coordinator closes it and elects every pool),
collects the rows in batches while the phases run, and writes the summary. Between phases the
nodes' transaction pools must be empty before anything else is sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from web3 import Web3

from actors.watcher import WatcherActor
from actors.worker import SenderActor
from loadgen import __version__, contracts, model
from loadgen import config as config_mod
from loadgen.accounts import MnemonicSource, derive_account, mnemonic_source
from loadgen.chain import ChainInfo, connect, fund, probe
from loadgen.config import ArrayCopy, Experiment, FlRound
from loadgen.devnet import DEV_MNEMONIC, REPO_ROOT
from loadgen.errors import ConfigError, UserError
from loadgen.metrics import DEFAULT_PORT, RunMetrics
from loadgen.plan import Payload, PhaseSpec, RunPlan, build
from loadgen.protocol import Coordinator
from loadgen.report import summarize_file
from loadgen.store import RunStore, blocks_table

COLLECT_EVERY_S = 1.0


@dataclass
class Progress:
    """A snapshot for the live display, summed over actors."""

    phase: str
    epoch: int
    planned: int
    stats: dict[str, float]
    elapsed_s: float
    phase_eta_s: float
    lagging: bool = False


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
            return 130
        return 0 if self.summary["passed"] else 1


@dataclass
class _Cluster:
    actors: list[ray.actor.ActorHandle] = field(default_factory=list)
    watchers: list[ray.actor.ActorHandle] = field(default_factory=list)
    actor_nodes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Joins ``address`` (or starts a local Ray) unless Ray is already up; leaves as it found."""
    if ray.is_initialized():
        yield
        return
    # Token authentication stays on; only its notice is too loud for a command-line tool.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", configure_logging=True)
    except (ConnectionError, ValueError) as e:
        raise UserError(f"cannot connect to Ray at {address}: {e}") from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def shared_chain(experiment: Experiment) -> Iterator[tuple[Experiment, MnemonicSource | None]]:
    """For a series of runs (a search, a sweep): the experiment pointed at one embedded devnet
    that outlives them all, when it names no endpoints, and the devnet's mnemonic."""
    if experiment.chain.endpoints:
        yield experiment, None
        return
    with experiment.chain.devnet.network(prometheus_targets=_targets_file(f"series-{os.getpid()}")) as node:
        pinned = config_mod.from_dict(config_mod.to_public_dict(experiment), {"chain.endpoints": node.urls})
        yield pinned, MnemonicSource("devnet", DEV_MNEMONIC)


def _targets_file(name: str) -> Path | None:
    """Where an embedded network names its nodes for grafana/prometheus/prometheus.yml, when
    loadgen runs from its repository (the file goes when the network stops)."""
    folder = REPO_ROOT / "grafana" / "prometheus"
    return folder / "targets" / f"{name}.json" if folder.is_dir() else None


def _node_slots(n_wanted: int | None) -> list[str]:
    """Node ids for the actors: as many per node as it has CPUs, interleaved across nodes."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    per_node = [[n["NodeID"]] * max(int(n["Resources"].get("CPU", 1)), 1) for n in nodes]
    slots = [nid for group in zip(*_pad(per_node), strict=True) for nid in group if nid]
    if n_wanted is None:
        return slots
    return [slots[i % len(slots)] for i in range(n_wanted)]


def _pad(groups: list[list[str]]) -> list[list[str]]:
    width = max(len(g) for g in groups)
    return [g + [""] * (width - len(g)) for g in groups]


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
        self.stopped_early: str | None = None
        self.metrics = RunMetrics(self.run_id, experiment.name, experiment.workload.kind, experiment.run.threshold)
        self.store: RunStore | None = None
        self.cluster = _Cluster()
        self.rounds: list[dict[str, Any]] = []
        self.started = time.time()
        self.interrupted = False
        self.endpoints: list[str] = []
        self._phase_refs: list[ray.ObjectRef] = []
        self._w3s: dict[str, Web3] = {}
        self._no_txpool: set[str] = set()
        self.metrics_url = ""

    # the whole run ------------------------------------------------------------------------
    def execute(self) -> RunResult:
        with contextlib.ExitStack() as stack:
            endpoints = list(self.experiment.chain.endpoints)
            devnet_used = not endpoints
            devnet_info: dict | None = None
            if devnet_used:
                self.on_event(f"starting the {self.experiment.chain.devnet.client} devnet…")
                node = stack.enter_context(self.experiment.chain.devnet.network(prometheus_targets=_targets_file(self.run_id)))
                endpoints = node.urls
                self.on_event(f"{node.describe()}: {', '.join(endpoints)}")
                devnet_info = node.manifest()
            self.endpoints = endpoints
            w3 = connect(endpoints[0])
            info = probe(w3)
            gas_price = self._check_chain(info)
            source = self.mnemonic or mnemonic_source(DEV_MNEMONIC if devnet_used else None)
            stack.enter_context(ray_session(self.ray_address))
            plan = build(self.experiment, endpoints, len(_node_slots(self.experiment.run.actors)))
            self._check_gas(plan, info)
            self.metrics.init_series(endpoints, [p.name for p in plan.phases])
            self.store = RunStore(self.dir)
            stack.callback(self.store.close)
            self._serve_metrics(stack)
            manifest = self._manifest(endpoints, info, source, plan, devnet_info)
            self.store.write_json("manifest.json", manifest)
            try:
                addresses = self._start_actors(plan, endpoints, source, info.chain_id, gas_price)
                coordinator_account = derive_account(source, 0)
                if gas_price:
                    self._fund(w3, coordinator_account, addresses, plan, gas_price, manifest)
                self._play(plan, w3, coordinator_account, addresses, gas_price, manifest)
            except KeyboardInterrupt:
                self.interrupted = True
                self.on_event("interrupted: stopping the workers and keeping what happened")
                self._stop_actors()
            except _StopEarly:
                self.on_event(f"stopped early: {self.stopped_early}")
                self._stop_actors()
            except BaseException as e:
                # keep what happened before the failure readable, then let it surface
                self._stop_actors()
                self.store.write_json("manifest.json", manifest | {"ended": _iso(time.time()), "failed": repr(e)})
                raise
            finally:
                self._shutdown_actors()
            self.store.close()
            summary = summarize_file(self.dir / "transactions.parquet", self.experiment.run.threshold)
            summary |= {"run_id": self.run_id, "rounds": self.rounds}
            summary["interrupted"] = self.interrupted
            summary["stopped_early"] = self.stopped_early
            self.store.write_json("summary.json", summary)
            manifest |= {"ended": _iso(time.time()), "interrupted": self.interrupted}
            self.store.write_json("manifest.json", manifest)
            return RunResult(self.dir, summary, self.interrupted)

    def _serve_metrics(self, stack: contextlib.ExitStack) -> None:
        if self.metrics_port is None:
            return
        try:
            port = self.metrics.serve(self.metrics_port, self.metrics_addr)
        except OSError as e:
            raise UserError(
                f"cannot serve metrics on {self.metrics_addr}:{self.metrics_port} ({e.strerror}): "
                "pass --metrics-port with a free port (0 picks one)"
            ) from None
        stack.callback(self.metrics.close)
        # stays up a moment after the last update, so Prometheus scrapes the final counts
        stack.callback(time.sleep, self.metrics_linger_s)
        self.metrics_url = f"http://{self.metrics_addr}:{port}/metrics"
        self.on_event(f"Prometheus metrics at {self.metrics_url}")
        w = self.experiment.workload
        self.metrics.set_trial(self.trial, w.pace_s if isinstance(w, FlRound) else w.workers / w.rate_tps)

    def _check_chain(self, info: ChainInfo) -> int:
        chain = self.experiment.chain
        if chain.chain_id is not None and chain.chain_id != info.chain_id:
            raise ConfigError("chain.chain_id", f"is {chain.chain_id} but the node says {info.chain_id}", "remove it or fix the endpoints")
        return info.gas_price if chain.gas_price is None else chain.gas_price

    def _check_gas(self, plan: RunPlan, info: ChainInfo) -> None:
        for phase in plan.phases:
            if phase.gas_limit > info.block_gas_limit:
                raise ConfigError(
                    "chain.gas_limit",
                    f"{phase.name} transactions need {phase.gas_limit:,} gas but a block holds {info.block_gas_limit:,}",
                    "lower chain.gas_limit (or workload.chunk_size)",
                )

    def _manifest(self, endpoints: list[str], info: ChainInfo, source: MnemonicSource, plan: RunPlan, devnet: dict | None) -> dict:
        return {
            "run_id": self.run_id,
            "trial": self.trial,
            "loadgen_version": __version__,
            "ray_version": ray.__version__,
            "python": platform.python_version(),
            "config": config_mod.to_public_dict(self.experiment),
            "endpoints": endpoints,
            "embedded_devnet": devnet is not None,
            "devnet": devnet,
            "chain": info.to_dict(),
            "keys": f"derived from the mnemonic of {source.origin}, path m/44'/60'/0'/0/i",
            "ray_nodes": sorted({n for n in _node_slots(None)}),
            "actors": len({w.actor for w in plan.workers}),
            "workers": len(plan.workers),
            "planned_transactions": plan.transactions,
            "started": _iso(self.started),
        }

    def _fund(self, w3: Web3, funder, addresses: list[str], plan: RunPlan, gas_price: int, manifest: dict) -> None:
        """At a gas price above 0 every worker needs ether for its worst case: every slot it may
        use (retries included) at its phase's gas limit."""
        retries = 1 + (getattr(self.experiment.workload, "max_retries", 0) or 0)
        worst = plan.epochs * sum(max(p.items) * p.gas_limit * (1 if p.fixed_slots else retries) for p in plan.phases)
        funding = fund(w3, funder, addresses, worst * gas_price, gas_price)
        manifest["funding"] = funding.to_dict()
        self.on_event(f"gas price {gas_price} wei: the funder {funding.funder} topped up {funding.topped_up} of {len(addresses)} workers")

    # Ray ----------------------------------------------------------------------------------
    def _start_actors(self, plan: RunPlan, endpoints: list[str], source: MnemonicSource, chain_id: int, gas_price: int) -> list[str]:
        n_actors = max(w.actor for w in plan.workers) + 1
        slots = _node_slots(n_actors)
        nodes = sorted(set(slots), key=slots.index)
        watchers = {}
        for i, node_id in enumerate(nodes):
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            watchers[node_id] = WatcherActor.options(scheduling_strategy=strategy).remote(endpoints[i % len(endpoints)], 0.05)
        ray.get([w.start.remote() for w in watchers.values()])
        self.cluster.watchers = list(watchers.values())
        actors = [
            SenderActor.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(slots[a], soft=False)).remote(
                self.run_id, chain_id, gas_price
            )
            for a in range(n_actors)
        ]
        self.cluster.actors = actors
        self.cluster.actor_nodes = [slots[a] for a in range(n_actors)]
        gap = self.experiment.run.gap_check_s
        answers = ray.get(
            [actor.setup.remote(plan.workers_of(a), source.phrase(), watchers[slots[a]], gap) for a, actor in enumerate(actors)]
        )
        addresses = [""] * len(plan.workers)
        for a, got in enumerate(answers):
            for spec, address in zip(plan.workers_of(a), got, strict=True):
                addresses[spec.worker] = Web3.to_checksum_address(address)
        self.on_event(f"{len(plan.workers)} workers in {n_actors} actors on {len(nodes)} Ray node(s)")
        return addresses

    def _stop_actors(self) -> None:
        """Workers stop at their next slot; what they had sent gets a moment to land, what they
        had not becomes ``unsent`` rows, and all of it is collected before the actors go."""
        with contextlib.suppress(Exception):
            ray.get([a.stop.remote() for a in self.cluster.actors], timeout=10)
            ray.wait(self._phase_refs, num_returns=len(self._phase_refs), timeout=15)
        if self.store is not None and self.cluster.actors:
            self._collect(final=True)

    def _shutdown_actors(self) -> None:
        with contextlib.suppress(Exception):
            ray.get([a.close.remote() for a in self.cluster.actors], timeout=10)
        with contextlib.suppress(Exception):
            ray.get([w.stop.remote() for w in self.cluster.watchers], timeout=10)
        for handle in self.cluster.actors + self.cluster.watchers:
            with contextlib.suppress(Exception):
                ray.kill(handle)

    # the workload ---------------------------------------------------------------------------
    def _play(self, plan: RunPlan, w3: Web3, boss, addresses: list[str], gas_price: int, manifest: dict) -> None:
        w = self.experiment.workload
        seed = self.experiment.run.seed
        if isinstance(w, ArrayCopy):
            target = contracts.deploy(w3, boss, "ArrayCopy", gas_price)
            manifest["contracts"] = {"ArrayCopy": target.address}
            self.store.write_json("manifest.json", manifest)
            (phase,) = plan.phases
            self._phase(phase, Payload("array-copy", target.address, seed=seed, array_size=w.array_size), plan)
            return
        assert isinstance(w, FlRound)
        fl = contracts.deploy(w3, boss, "FederatedLearning", gas_price)
        manifest["contracts"] = {"FederatedLearning": fl.address}
        self.store.write_json("manifest.json", manifest)
        coordinator = Coordinator(w3, boss, fl, gas_price)
        commit, reveal = plan.phases
        chunks = model.chunk_count(w.model_length, w.chunk_size)
        for epoch in range(w.epochs):
            round_id = coordinator.open_round(chunks, w.redundancy, addresses)
            self.on_event(f"epoch {epoch + 1}/{w.epochs}: round {round_id} opened for {len(addresses)} workers in {w.pools} pool(s)")
            common = {"contract": fl.address, "epoch": epoch, "round_id": round_id, "seed": seed}
            common |= {"model_length": w.model_length, "chunk_size": w.chunk_size}
            self._phase(commit, Payload("commit", **common), plan)
            coordinator.close_commit_phase(round_id)
            self._phase(reveal, Payload("reveal", **common), plan)
            coordinator.close_reveal_phase(round_id)
            self.rounds.append(self._elect(coordinator, w3, round_id, epoch, w))

    def _elect(self, coordinator: Coordinator, w3: Web3, round_id: int, epoch: int, w: FlRound) -> dict:
        fl = coordinator.contract
        results = []
        for pool in range(w.pools):
            result = coordinator.elect(round_id, pool)
            expected = model.pool_digest(self.experiment.run.seed, epoch, pool, w.model_length, w.chunk_size)
            results.append(
                {"pool": pool, "elected": "0x" + result.digest.hex(), "votes": result.votes, "expected": result.digest == expected}
            )
        elected = sum(r["expected"] for r in results)
        self.on_event(f"round {round_id}: {elected}/{w.pools} pool(s) elected their model")
        return {"epoch": epoch, "round_id": round_id, "contract": fl.address, "pools": results}

    def _phase(self, phase: PhaseSpec, payload: Payload, plan: RunPlan) -> None:
        run = self.experiment.run
        ray.get([a.prepare_phase.remote(phase, payload) for a in self.cluster.actors])
        t0 = time.time() + run.lead_time_s
        refs = [a.run_phase.remote(phase, payload, t0, run.commit_timeout_s, self.trial) for a in self.cluster.actors]
        self._phase_refs = refs
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=COLLECT_EVERY_S)
            stats = self._collect()
            eta = max(t0 + phase.duration_s - time.time(), 0.0)
            progress = Progress(
                phase.name, payload.epoch, plan.transactions, stats, time.time() - self.started, eta, stats["max_lag_s"] > 1.0
            )
            self.on_progress(progress)
            reason = self.should_stop(progress)
            if reason:
                self.stopped_early = reason
                raise _StopEarly
        ray.get(refs)
        self._collect(final=True)
        self._wait_for_empty_pools()

    def _collect(self, final: bool = False) -> dict[str, float]:
        answers = ray.get([a.collect.remote() for a in self.cluster.actors])
        totals: dict[str, float] = {}
        for table, stats in answers:
            if table is not None:
                self.store.transactions.append(table)
                self.metrics.rows(table)
            for k, v in stats.items():
                totals[k] = max(totals.get(k, 0), v) if k == "max_lag_s" else totals.get(k, 0) + v
        self.metrics.actor_stats(totals)
        if self.cluster.watchers:
            blocks = ray.get(self.cluster.watchers[0].take_blocks.remote())
            if blocks:
                self.store.blocks.append(blocks_table(self.run_id, self.trial, blocks))
                self.metrics.blocks(blocks)
        self.metrics.txpools(self._txpools())
        if final:
            self.store.transactions.flush()
            self.store.blocks.flush()
        return totals

    def _txpools(self) -> dict[str, tuple[int, int]]:
        """(pending, queued) per endpoint, for nodes that have txpool_status."""
        pools = {}
        for url in self.endpoints:
            if url in self._no_txpool:
                continue
            try:
                result = self._w3s.setdefault(url, connect(url, timeout_s=2)).provider.make_request("txpool_status", [])["result"]
                pools[url] = (int(result["pending"], 16), int(result["queued"], 16))
            except Exception:  # any failure: this node has no txpool_status
                self._no_txpool.add(url)
        return pools

    def _wait_for_empty_pools(self, timeout_s: float = 30.0) -> None:
        """Nothing new is sent while a node still holds transactions of the last phase."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            pools = self._txpools()
            if sum(p + q for p, q in pools.values()) == 0:
                return
            time.sleep(0.2)
        self.on_event(f"the nodes' pools still hold transactions after {timeout_s:g}s: {pools}")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

"""Live Prometheus metrics of a run, served by the driver: one scrape target per run, or one for
all the runs of a series (a search's trials, a sweep's points).

The driver feeds what it collects every second (final transaction rows, the actors' counters,
the watcher's blocks, the nodes' txpools) and marks when each phase starts and ends. Every series
carries the run's id so a Grafana variable can pick a run; no label is per worker or per
transaction, and no address or key of a worker appears anywhere.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIServer

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.metrics_core import Metric

from actors.stats import SenderStats, WatcherLag

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DEFAULT_PORT = 9464


class MetricsServer(CollectorRegistry):
    """The scrape target: the metrics of the run under way and of the one before it. A series
    keeps one target (one port to scrape for a whole search), and a finished run's final counts
    stay there while the next one runs, so Prometheus scrapes them without the series waiting."""

    def __init__(self, port: int = DEFAULT_PORT, addr: str = "0.0.0.0", linger_s: float = 2.0) -> None:
        super().__init__()
        self.linger_s = linger_s  # how long the last run's final counts stay up after it ended
        self._shown: deque[CollectorRegistry] = deque(maxlen=2)
        self._server: WSGIServer
        self._server, _ = start_http_server(port, addr=addr, registry=self)
        self.port: int = self._server.server_port

    def show(self, metrics: RunMetrics) -> None:
        self._shown.append(metrics.registry)

    def collect(self) -> Iterator[Metric]:
        # one family per name, the runs' samples side by side (they differ by run_id): a name
        # twice in one scrape fails it
        families: dict[str, Metric] = {}
        for registry in list(self._shown):
            for family in registry.collect():
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
                merged.samples += family.samples
        yield from families.values()

    def close(self) -> None:
        """Stops serving, after the linger: the last run's final counts get their scrape."""
        time.sleep(self.linger_s)
        self._server.shutdown()
        self._server.server_close()


class RunMetrics:
    def __init__(self, run_id: str, name: str, workload: str, threshold: float) -> None:
        self.run_id = run_id
        r = self.registry = CollectorRegistry()
        run = ["run_id"]
        self.info = Info("loadgen_run", "The run: its id, name and workload.", run, registry=r)
        self.info.labels(run_id).info({"name": name, "workload": workload})
        # run ids need not sort by time (search trials, sweeps): the dashboards order runs by this
        self.started = Gauge("loadgen_run_start_timestamp_seconds", "When the run started (Unix time).", run, registry=r)
        self.started.labels(run_id).set(time.time())
        self.phases = Gauge(
            "loadgen_phase", "1 while a phase of an epoch runs (from its first send until its transactions are final), 0 after.",
            [*run, "phase", "epoch"], registry=r,
        )  # fmt: skip
        self.transactions = Counter(
            "loadgen_transactions", "Transactions by outcome: scheduled, sent, then one of committed, reverted, rejected, dropped, unsent.",
            [*run, "outcome", "phase", "endpoint"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "loadgen_inclusion_latency_seconds", "Time from a transaction's scheduled send to its block being seen (committed ones).",
            [*run, "phase"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.lag = Histogram(
            "loadgen_schedule_lag_seconds", "Time from a transaction's scheduled send to its actual send.",
            run, buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.answer = Histogram(
            "loadgen_node_answer_seconds", "Time the node took to answer eth_sendRawTransaction (t_acked - t_sent).",
            [*run, "endpoint"], buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("loadgen_in_flight_transactions", "Sent, accepted, not yet in a block nor timed out.", run, registry=r)
        self.rpc_errors = Counter(
            "loadgen_rpc_errors",
            "Refused sends by endpoint and kind (rpc, http, timeout, connection).",
            [*run, "endpoint", "kind"],
            registry=r,
        )
        self.gaps = Counter("loadgen_nonce_gaps_recovered", "Accepted transactions the node lost and loadgen sent again.", run, registry=r)
        self.failovers = Counter("loadgen_failovers", "Times a worker moved off its endpoint because it was down.", run, registry=r)
        self.endpoint_up = Gauge(
            "loadgen_endpoint_up", "1 while an endpoint answers; 0 from when a sender or a watcher found it down until it answers again.",
            [*run, "endpoint"], registry=r,
        )  # fmt: skip
        self.head = Gauge("loadgen_chain_head_block", "Number of the newest block seen.", run, registry=r)
        self.block_interval = Gauge(
            "loadgen_block_interval_seconds", "Time between the last two blocks, by their timestamps.", run, registry=r
        )
        self.block_txs = Gauge("loadgen_block_transactions", "Transactions in the newest block.", run, registry=r)
        self.block_gas = Gauge("loadgen_block_gas_used", "Gas used by the newest block.", run, registry=r)
        self.block_gas_limit = Gauge("loadgen_block_gas_limit", "Gas limit of the newest block.", run, registry=r)
        self.chain_txs = Counter("loadgen_chain_transactions", "Transactions in the blocks seen (anyone's).", run, registry=r)
        self.chain_gas = Counter("loadgen_chain_gas_used", "Gas used by the blocks seen.", run, registry=r)
        self.txpool = Gauge(
            "loadgen_txpool_transactions",
            "A node's transaction pool (txpool_status), pending or queued.",
            [*run, "endpoint", "state"],
            registry=r,
        )
        self.trial = Gauge("loadgen_trial", "Current trial (search probe).", run, registry=r)
        self.pace = Gauge("loadgen_pace_seconds", "Pace under test: seconds between a worker's two transactions.", run, registry=r)
        self.threshold = Gauge("loadgen_threshold_ratio", "Commit ratio a run must reach.", run, registry=r)
        self.commit_ratio = Gauge(
            "loadgen_commit_ratio", "Committed within the commit timeout / transactions final so far.", run, registry=r
        )
        self.late = Counter(
            "loadgen_late_transactions", "Included, but after the phase's commit deadline (counted committed or reverted too).",
            run, registry=r,
        )  # fmt: skip
        self.watcher_lag_blocks = Gauge(
            "loadgen_watcher_lag_blocks", "Blocks the slowest block watcher has yet to read behind the chain's head.", run, registry=r
        )
        self.watcher_lag = Gauge(
            "loadgen_watcher_lag_seconds", "How long the oldest block the slowest watcher has not read has existed.", run, registry=r
        )
        self.sender_busy = Gauge(
            "loadgen_sender_cpu_busy_ratio", "The busiest sender actor's share of one core over the last collection (1 = no CPU left).",
            run, registry=r,
        )  # fmt: skip
        self.generator_bound = Gauge(
            "loadgen_generator_bound", "1 when the run ended with its senders behind schedule or out of CPU: it measured the generator.",
            run, registry=r,
        )  # fmt: skip
        self.threshold.labels(run_id).set(threshold)
        self._final = 0
        self._committed = 0
        self._last_block_ts: float | None = None
        self._stats = SenderStats()

    def init_series(self, endpoints: list[str], phases: list[str]) -> None:
        """Creates every bounded series at zero, so rates and panels exist before the first event."""
        rid = self.run_id
        for endpoint in endpoints:
            for phase in phases:
                for outcome in ("scheduled", "sent", "committed", "reverted", "rejected", "dropped", "unsent"):
                    self.transactions.labels(rid, outcome, phase, endpoint)
            for kind in ("rpc", "http", "timeout", "connection"):
                self.rpc_errors.labels(rid, endpoint, kind)
            self.endpoint_up.labels(rid, endpoint).set(1)
            self.answer.labels(rid, endpoint)
        for phase in phases:
            self.latency.labels(rid, phase)
        self.lag.labels(rid)
        self.gaps.labels(rid)
        self.failovers.labels(rid)
        self.in_flight.labels(rid)
        self.commit_ratio.labels(rid)
        self.late.labels(rid)
        self.watcher_lag_blocks.labels(rid)
        self.watcher_lag.labels(rid)
        self.sender_busy.labels(rid)
        self.generator_bound.labels(rid)

    def phase(self, name: str, epoch: int, running: bool) -> None:
        """Marks a phase of an epoch as started (``running``) or ended."""
        self.phases.labels(self.run_id, name, str(epoch)).set(1 if running else 0)

    def set_trial(self, trial: int, pace_s: float | None) -> None:
        self.trial.labels(self.run_id).set(trial)
        if pace_s is not None:
            self.pace.labels(self.run_id).set(pace_s)

    def add(self, table: pa.Table) -> None:
        """Final rows: outcome counts, latency, lag, refused sends."""
        rid = self.run_id
        counts = table.group_by(["status", "phase", "endpoint"]).aggregate([([], "count_all")])
        for status, phase, endpoint, n in zip(
            *(counts.column(c).to_pylist() for c in ("status", "phase", "endpoint", "count_all")), strict=True
        ):
            self.transactions.labels(rid, status, phase, endpoint).inc(n)
            self.transactions.labels(rid, "scheduled", phase, endpoint).inc(n)
            if status != "unsent":
                self.transactions.labels(rid, "sent", phase, endpoint).inc(n)
        status = table.column("status").to_numpy(zero_copy_only=False)
        committed = status == "committed"
        latency = table.column("latency_s").to_numpy(zero_copy_only=False)
        self._observe(self.latency, table.column("phase").to_numpy(zero_copy_only=False), latency, committed)
        sent = table.column("t_sent").to_numpy(zero_copy_only=False)
        lag = sent - table.column("t_scheduled").to_numpy(zero_copy_only=False)
        hist = self.lag.labels(rid)
        for v in lag[~np.isnan(lag)]:
            hist.observe(v)
        answer = table.column("t_acked").to_numpy(zero_copy_only=False) - sent
        self._observe(self.answer, table.column("endpoint").to_numpy(zero_copy_only=False), answer, ~np.isnan(answer))
        rejected = table.filter(pa.compute.equal(table.column("status"), "rejected"))
        for endpoint, error in zip(rejected.column("endpoint").to_pylist(), rejected.column("error").to_pylist(), strict=True):
            self.rpc_errors.labels(rid, endpoint, (error or "rpc").split(":", 1)[0]).inc()
        late = ~np.isnan(table.column("late_s").to_numpy(zero_copy_only=False).astype(float))
        self.late.labels(rid).inc(int(late.sum()))
        self._final += table.num_rows
        self._committed += int((committed & ~late).sum())
        self.commit_ratio.labels(rid).set(self._committed / self._final)

    def _observe(self, metric: Histogram, keys: np.ndarray, values: np.ndarray, mask: np.ndarray) -> None:
        """Observes the masked values into the run's series of ``metric`` labelled by their key."""
        for key in np.unique(keys[mask]):
            hist = metric.labels(self.run_id, key)
            for v in values[mask & (keys == key)]:
                hist.observe(v)

    def actor_stats(self, stats: SenderStats, lag: WatcherLag) -> None:
        self.in_flight.labels(self.run_id).set(stats.inflight)
        self.sender_busy.labels(self.run_id).set(stats.max_busy)
        self.watcher_lag_blocks.labels(self.run_id).set(lag.blocks)
        self.watcher_lag.labels(self.run_id).set(lag.seconds)
        for more, counter in (
            (stats.gaps_recovered - self._stats.gaps_recovered, self.gaps),
            (stats.failovers - self._stats.failovers, self.failovers),
        ):
            if more > 0:
                counter.labels(self.run_id).inc(more)
        self._stats = stats

    def generator(self, bound: bool) -> None:
        self.generator_bound.labels(self.run_id).set(1 if bound else 0)

    def endpoints(self, events: Iterable) -> None:
        """Endpoint ups and downs, oldest first: the last word on each endpoint stands."""
        for e in events:
            self.endpoint_up.labels(self.run_id, e.endpoint).set(1 if e.up else 0)

    def blocks(self, blocks: Iterable) -> None:
        rid = self.run_id
        for b in blocks:
            self.head.labels(rid).set(b.number)
            self.block_txs.labels(rid).set(b.tx_count)
            self.block_gas.labels(rid).set(b.gas_used)
            self.block_gas_limit.labels(rid).set(b.gas_limit)
            self.chain_txs.labels(rid).inc(b.tx_count)
            self.chain_gas.labels(rid).inc(b.gas_used)
            if self._last_block_ts is not None:
                self.block_interval.labels(rid).set(b.timestamp_s - self._last_block_ts)
            self._last_block_ts = b.timestamp_s

    def txpools(self, pools: dict[str, tuple[int, int]]) -> None:
        for endpoint, (pending, queued) in pools.items():
            self.txpool.labels(self.run_id, endpoint, "pending").set(pending)
            self.txpool.labels(self.run_id, endpoint, "queued").set(queued)

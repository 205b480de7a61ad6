"""What a run's report shows, computed from its rows and blocks: the headline, the series over
time windows that fit the run's length, the phases, the breakdowns by endpoint and by phase, the
blocks, and the configuration as flat key → value rows. Pure (numpy and pyarrow, no drawing), so
`loadgen report --json` and the page show the same numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.report.summary import floats, summarize

TARGET_WINDOWS = 60
MIN_WINDOWS = 10
# 1-2-5 steps, plus the clock's own (15 s, 30 s, minutes, hours) so axes read naturally
WINDOWS_S = tuple(
    sorted({m * 10.0**k for m in (1, 2, 5) for k in range(-2, 6)} | {15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0})
)


def choose_window(span_s: float) -> float:
    """About TARGET_WINDOWS windows over the run, from WINDOWS_S; never under a second while a
    second still leaves MIN_WINDOWS of them, because blocks come about once a second and finer
    windows only show which window a block fell in. A run of a few seconds gets finer windows
    rather than fewer than MIN_WINDOWS points."""
    if span_s <= 0:
        return 1.0
    ideal = span_s / TARGET_WINDOWS
    window = min(WINDOWS_S, key=lambda w: abs(math.log(w / ideal)))
    window = max(window, 1.0)
    if span_s / window < MIN_WINDOWS:
        window = max((w for w in WINDOWS_S if span_s / w >= MIN_WINDOWS), default=WINDOWS_S[0])
    return window


def flatten_config(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as dotted key → readable value rows: lists of plain values on one line,
    lists of mappings as key[i].field, unset values as "–"."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "{}")] if prefix else []
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += flatten_config(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(value, list | tuple):
        if any(isinstance(v, dict | list | tuple) for v in value):
            return [row for i, v in enumerate(value) for row in flatten_config(v, f"{prefix}[{i}]")]
        return [(prefix, ", ".join(_plain(v) for v in value) if value else "[]")]
    return [(prefix, _plain(value))]


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def seconds(value: float | None) -> str:
    """A duration for a reader: milliseconds under a second, three significant digits."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s" if value < 100 else f"{value:,.0f} s"


def _statuses(table: pa.Table) -> np.ndarray:
    return table.column("status").to_numpy(zero_copy_only=False).astype(str)


def nullable(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


@dataclass(frozen=True)
class Clock:
    """The run's time axis: seconds since its first scheduled transaction, cut in windows."""

    start: float  # epoch seconds of the first scheduled transaction
    span_s: float  # to the last thing that happened: a send, an answer or an inclusion
    window_s: float

    @property
    def edges(self) -> np.ndarray:
        n = max(1, math.ceil(self.span_s / self.window_s - 1e-9))
        return np.arange(n + 1) * self.window_s

    def bins(self, t: np.ndarray) -> np.ndarray:
        """Window index of each epoch time (−1 outside the run); the run's last instant counts in its last window."""
        idx = np.floor((t - self.start) / self.window_s)
        n = len(self.edges) - 1
        idx = np.where((idx == n) & (t - self.start <= self.span_s + 1e-9), n - 1, idx)
        return np.where(np.isnan(idx) | (idx < 0) | (idx >= n), -1, idx).astype(int)


def clock_of(table: pa.Table) -> Clock:
    if not table.num_rows:
        return Clock(0.0, 0.0, choose_window(0.0))
    times = np.concatenate([floats(table.column(c)) for c in ("t_scheduled", "t_sent", "t_acked", "t_included")])
    # (a send may leave up to a timer tick before its slot: the first one can precede the first slot)
    start = float(np.nanmin(times))
    span = float(np.nanmax(times)) - start
    return Clock(start, span, choose_window(span))


@dataclass(frozen=True)
class Series:
    """Per window. Rates are per second; each is binned by the time it names."""

    t_s: np.ndarray  # the windows' starts
    scheduled_tps: np.ndarray  # the offered load: by scheduled time
    sent_tps: np.ndarray  # by send time
    committed_tps: np.ndarray  # by inclusion time (when loadgen saw the block)
    failing_tps: np.ndarray  # reverted, rejected, dropped, unsent: by scheduled time
    commit_ratio: np.ndarray  # of the transactions scheduled in the window; NaN where none was
    latency_p50_s: np.ndarray  # committed transactions, by scheduled time
    latency_p95_s: np.ndarray
    latency_p99_s: np.ndarray
    lag_p50_s: np.ndarray  # t_sent − t_scheduled, by scheduled time
    lag_p99_s: np.ndarray
    lag_max_s: np.ndarray

    def to_dict(self) -> dict[str, list[float | None]]:
        return {name: nullable(getattr(self, name)) for name in self.__dataclass_fields__}


def _rate(clock: Clock, t: np.ndarray) -> np.ndarray:
    idx = clock.bins(t)
    return np.bincount(idx[idx >= 0], minlength=len(clock.edges) - 1) / clock.window_s


def _percentiles(clock: Clock, t: np.ndarray, values: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    n = len(clock.edges) - 1
    idx = clock.bins(t)
    keep = (idx >= 0) & ~np.isnan(values)
    idx, values = idx[keep], values[keep]
    out = [np.full(n, np.nan) for _ in qs]
    order = np.argsort(idx, kind="stable")
    idx, values = idx[order], values[order]
    cuts = np.searchsorted(idx, np.arange(n + 1))
    for w in range(n):
        chunk = values[cuts[w] : cuts[w + 1]]
        if chunk.size:
            for series, q in zip(out, np.percentile(chunk, qs), strict=True):
                series[w] = q
    return out


def series_of(table: pa.Table, clock: Clock) -> Series:
    status = _statuses(table)
    scheduled, sent, included = floats(table.column("t_scheduled")), floats(table.column("t_sent")), floats(table.column("t_included"))
    ok = status == "committed"
    offered = _rate(clock, scheduled)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(offered > 0, _rate(clock, scheduled[ok]) / offered, np.nan)
    latency = np.where(ok, floats(table.column("latency_s")), np.nan)
    lat50, lat95, lat99 = _percentiles(clock, scheduled, latency, (50, 95, 99))
    lag50, lag99, lagmax = _percentiles(clock, scheduled, sent - scheduled, (50, 99, 100))
    return Series(
        clock.edges[:-1], offered, _rate(clock, sent), _rate(clock, included[ok]), _rate(clock, scheduled[~ok]),
        ratio, lat50, lat95, lat99, lag50, lag99, lagmax,
    )  # fmt: skip


@dataclass(frozen=True)
class Group:
    """One endpoint's or one phase's rows, summarised as the whole run is."""

    key: str
    first_s: float  # its first and last scheduled transaction, on the run's clock
    last_s: float
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "first_s": self.first_s, "last_s": self.last_s} | self.summary


def _grouped(table: pa.Table, column: str) -> Iterator[tuple[str, pa.Table]]:
    """The rows by `endpoint` or `phase`; a phase that recurs every epoch is one group per epoch."""
    keys = [column]
    if column == "phase" and pc.count_distinct(table.column("epoch")).as_py() > 1:
        keys.append("epoch")
    for values in table.select(keys).group_by(keys).aggregate([]).to_pylist():
        mask = pa.array(np.ones(table.num_rows, dtype=bool))
        for k in keys:
            same = pc.is_null(table.column(k)) if values[k] is None else pc.fill_null(pc.equal(table.column(k), values[k]), False)
            mask = pc.and_(mask, same)
        name = "–" if values[column] is None else str(values[column])
        yield name + (f" (epoch {values['epoch']})" if len(keys) > 1 else ""), table.filter(mask)


def breakdown(table: pa.Table, column: str, clock: Clock, threshold: float) -> list[Group]:
    """The rows grouped by `endpoint` or `phase`, in the order they were first scheduled."""
    groups = []
    for key, rows in _grouped(table, column):
        scheduled = floats(rows.column("t_scheduled")) - clock.start
        groups.append(Group(key, float(scheduled.min()), float(scheduled.max()), summarize(rows, threshold)))
    return sorted(groups, key=lambda g: (g.first_s, g.key))


@dataclass(frozen=True)
class Span:
    """A phase on the run's clock: from its first scheduled transaction to the next phase's (the
    engine runs them one after another), the last one to the end of the run."""

    name: str
    start_s: float
    end_s: float


def spans_of(phases: list[Group], clock: Clock) -> list[Span]:
    ends = [g.first_s for g in phases[1:]] + [clock.span_s] if phases else []
    return [Span(g.key, g.first_s, end) for g, end in zip(phases, ends, strict=True)]


@dataclass(frozen=True)
class Blocks:
    """The blocks the watcher saw while the run's transactions were scheduled and included."""

    t_s: np.ndarray  # block timestamp on the run's clock
    number: np.ndarray
    interval_s: np.ndarray  # since the block before (NaN for the first)
    gas_used: np.ndarray
    gas_limit: np.ndarray
    tx_count: np.ndarray

    @property
    def fullness(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.gas_limit > 0, self.gas_used / self.gas_limit, np.nan)

    def stats(self) -> dict[str, Any]:
        def agg(values: np.ndarray, fn: Any) -> float | None:
            values = values[~np.isnan(values)]
            return float(fn(values)) if values.size else None

        return {
            "blocks": int(self.number.size),
            "interval_mean_s": agg(self.interval_s, np.mean),
            "interval_max_s": agg(self.interval_s, np.max),
            "fullness_mean": agg(self.fullness, np.mean),
            "fullness_max": agg(self.fullness, np.max),
            "gas_used": int(self.gas_used.sum()),
            "tx_per_block_mean": agg(self.tx_count, np.mean),
            "tx_per_block_max": agg(self.tx_count, np.max),
        }


def blocks_of(run_dir: Path, clock: Clock) -> Blocks | None:
    path = run_dir / "blocks.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path, columns=["number", "timestamp", "tx_count", "gas_used", "gas_limit"])
    if not table.num_rows:
        return None
    # several watchers may report the same block: one row per number, in order
    numbers, first = np.unique(table.column("number").to_numpy(zero_copy_only=False), return_index=True)
    table = table.take(pa.array(first))
    stamp = floats(table.column("timestamp"))
    interval = np.concatenate(([np.nan], np.diff(stamp)))
    # block timestamps are whole seconds on geth: a block in the run's first second may carry an earlier stamp
    keep = (stamp >= math.floor(clock.start)) & (stamp <= clock.start + clock.span_s)
    if not keep.any():
        return None
    return Blocks(
        stamp[keep] - clock.start, numbers[keep], interval[keep], floats(table.column("gas_used"))[keep],
        floats(table.column("gas_limit"))[keep], floats(table.column("tx_count"))[keep],
    )  # fmt: skip


@dataclass(frozen=True)
class Txpool:
    """Each node's transaction pool as the driver sampled it (about once a second): pending is
    what waits for a block, queued what waits behind a missing nonce."""

    t_s: np.ndarray  # sample times on the run's clock
    endpoints: list[str]
    pending: np.ndarray  # one row per endpoint, one column per sample
    queued: np.ndarray

    @property
    def unique_pending(self) -> np.ndarray:
        """Pending transactions, each once: the nodes gossip what is pending, so one transaction
        sits in every pool and their sum counts it once per node; the fullest pool holds (nearly)
        all of them. Queued transactions are not gossiped: their sum counts each once."""
        return self.pending.max(axis=0)

    def stats(self) -> dict[str, Any]:
        pending, queued = self.unique_pending, self.queued.sum(axis=0)
        return {
            "samples": int(self.t_s.size),
            "pending_max": int(pending.max()),
            "pending_mean": float(pending.mean()),
            "queued_max": int(queued.max()),
            "by_endpoint_pending_max": {e: int(row.max()) for e, row in zip(self.endpoints, self.pending, strict=True)},
        }


def txpool_of(run_dir: Path, clock: Clock) -> Txpool | None:
    path = run_dir / "txpool.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path, columns=["t", "endpoint", "pending", "queued"])
    if not table.num_rows:
        return None
    t = floats(table.column("t"))
    times, column = np.unique(t, return_inverse=True)
    endpoints = sorted(set(table.column("endpoint").to_pylist()))
    row = np.array([endpoints.index(e) for e in table.column("endpoint").to_pylist()])
    pending = np.zeros((len(endpoints), times.size))
    queued = np.zeros_like(pending)
    pending[row, column] = floats(table.column("pending"))
    queued[row, column] = floats(table.column("queued"))
    return Txpool(times - clock.start, endpoints, pending, queued)

"""What a run's rows add up to (counts by status, commit ratio, latency, lag) and the terminal
table of it. The report's series and breakdowns are in report/data.py and run_report.py, its figures in plots, its
page in report_html."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.common.errors import UserError
from loadgen.engine.profile import RateProfile
from loadgen.engine.schema import STATUSES
from loadgen.engine.store import finalize

SUMMARY_COLUMNS = ["status", "latency_s", "t_scheduled", "t_sent", "t_acked", "t_included", "resends", "recovered", "attempt", "late_s"]


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def floats(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric column as floats, nulls as NaN."""
    return array.to_numpy(zero_copy_only=False).astype(float, copy=False)


class _Totals:
    """Sums a run's rows batch by batch: counts, and the latencies and lags percentiles need."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(STATUSES, 0)
        self.rows = 0
        self.resends = 0
        self.recovered = 0
        self.committed_late = 0
        self.lateness: list[np.ndarray] = []
        self.latencies: list[np.ndarray] = []
        self.lags: list[np.ndarray] = []
        self.first_lags: list[np.ndarray] = []
        self.answers: list[np.ndarray] = []
        self.start = math.inf
        self.end = -math.inf
        self.last_scheduled = -math.inf
        self.last_send = -math.inf

    def add(self, batch: pa.Table | pa.RecordBatch) -> None:
        status = batch.column("status")
        for s in STATUSES:
            self.counts[s] += int(pc.sum(pc.equal(status, s)).as_py() or 0)
        self.rows += batch.num_rows
        self.resends += int(pc.sum(batch.column("resends")).as_py() or 0)
        if "recovered" in batch.schema.names:  # files written before the column existed lack it
            self.recovered += int(pc.sum(batch.column("recovered")).as_py() or 0)
        committed = pc.equal(status, "committed")
        if "late_s" in batch.schema.names:  # files written before the column existed lack it
            late = pc.is_valid(batch.column("late_s"))
            self.committed_late += int(pc.sum(pc.and_(committed, late)).as_py() or 0)
            self.lateness.append(floats(pc.filter(batch.column("late_s"), late)))
        self.latencies.append(floats(pc.filter(batch.column("latency_s"), committed)))
        sent = batch.column("t_sent")
        has_sent = pc.is_valid(sent)
        lag = floats(pc.filter(sent, has_sent)) - floats(pc.filter(batch.column("t_scheduled"), has_sent))
        self.lags.append(lag)
        # a refused transaction's next attempt leaves when the refusal is known: that measures the
        # node's answer, not whether the generator kept time (loadgen/capacity.py)
        self.first_lags.append(lag[floats(pc.filter(batch.column("attempt"), has_sent)) == 1])
        last_send = pc.max(sent).as_py()
        if last_send is not None:
            self.last_send = max(self.last_send, last_send)
        acked = batch.column("t_acked")
        answered = pc.and_(has_sent, pc.is_valid(acked))
        self.answers.append(floats(pc.filter(acked, answered)) - floats(pc.filter(sent, answered)))
        if batch.num_rows:
            self.start = min(self.start, pc.min(batch.column("t_scheduled")).as_py())
            self.last_scheduled = max(self.last_scheduled, pc.max(batch.column("t_scheduled")).as_py())
        included = pc.max(pc.filter(batch.column("t_included"), committed)).as_py()
        if included is not None:
            self.end = max(self.end, included)

    def result(self, threshold: float) -> dict[str, Any]:
        latency = np.concatenate(self.latencies) if self.latencies else np.array([])
        lag = np.concatenate(self.lags) if self.lags else np.array([])
        first_lag = np.concatenate(self.first_lags) if self.first_lags else np.array([])
        answer = np.concatenate(self.answers) if self.answers else np.array([])
        throughput: float | None = 0.0
        if latency.size:
            throughput = latency.size / (self.end - self.start) if self.end > self.start else None
        lateness = np.concatenate(self.lateness) if self.lateness else np.array([])
        # committed within the commit timeout, as the study's tool counted: a late inclusion is
        # on the chain (and in "committed"), but not in time
        ratio = (self.counts["committed"] - self.committed_late) / self.rows if self.rows else 0.0
        planned_span = self.last_scheduled - self.start
        offered_span = self.last_send - self.start
        return {
            "scheduled": self.rows,
            "sent": self.rows - self.counts["unsent"],
            **self.counts,
            "committed_late": self.committed_late,
            "late": int(lateness.size),
            "late_p50_s": _percentile(lateness, 50),
            "late_max_s": float(lateness.max()) if lateness.size else None,
            "commit_ratio": ratio,
            "threshold": threshold,
            "passed": bool(self.rows) and ratio >= threshold,
            "latency_p50_s": _percentile(latency, 50),
            "latency_p95_s": _percentile(latency, 95),
            "latency_p99_s": _percentile(latency, 99),
            "latency_max_s": float(latency.max()) if latency.size else None,
            "throughput_tps": throughput,
            # the rate the plan asked for (every slot) and the rate the sends left at, each over its
            # span from the first slot (engine/verdict.py); none for a plan sending all at once
            "planned_tps": self.rows / planned_span if planned_span > 0 else None,
            "offered_tps": (self.rows - self.counts["unsent"]) / offered_span if planned_span > 0 and offered_span > 0 else None,
            "schedule_lag_p50_s": _percentile(lag, 50),
            "schedule_lag_p99_s": _percentile(lag, 99),
            "schedule_lag_first_p99_s": _percentile(first_lag, 99),
            # how long the node took to answer eth_sendRawTransaction (t_acked − t_sent)
            "answer_p50_s": _percentile(answer, 50),
            "answer_p95_s": _percentile(answer, 95),
            "answer_p99_s": _percentile(answer, 99),
            "resends": self.resends,
            "recovered": self.recovered,
        }


def summarize(table: pa.Table, threshold: float) -> dict[str, Any]:
    """Every scheduled transaction is one row with one status; all but committed count against
    the commit ratio, as the attempts they are."""
    totals = _Totals()
    totals.add(table)
    return totals.result(threshold)


def summarize_file(path: Path, threshold: float) -> dict[str, Any]:
    """The same, streaming the file by row group: a million rows never sit in memory at once."""
    totals = _Totals()
    file = pq.ParquetFile(path)
    columns = [c for c in SUMMARY_COLUMNS if c in file.schema_arrow.names]
    for batch in file.iter_batches(batch_size=65_536, columns=columns):
        totals.add(batch)
    return totals.result(threshold)


def load_run(run_dir: Path) -> tuple[pa.Table, dict[str, Any], dict[str, Any]]:
    """A run's rows, summary and manifest; a killed run's part files are merged first and its
    summary computed from what it kept."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run folder: pass a folder under runs/ that holds transactions.parquet")
    finalize(run_dir)
    path = run_dir / "transactions.parquet"
    if not path.is_file():
        raise UserError(f"{run_dir} holds no transactions.parquet: is it a loadgen run folder?")
    table = pq.read_table(path)
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
        if "submitted" in summary:  # written before the count of all rows was renamed
            summary.setdefault("scheduled", summary.pop("submitted"))
        summary.setdefault("sent", summary["scheduled"] - summary["unsent"])
    else:
        threshold = manifest.get("config", {}).get("run", {}).get("threshold", 0.85)
        summary = summarize(table, threshold) | {"run_id": run_dir.name, "rounds": [], "incomplete": True}
    return table, summary, manifest


def planned_rate(manifest: dict[str, Any]) -> RateProfile | None:
    """The profile the run's workload asked for, read back from its resolved config."""
    from loadgen.config import schema as config

    try:
        return config.from_dict(manifest["config"]).plugin.planned_rate()
    except (KeyError, UserError):  # an older run folder, or a workload no longer installed
        return None


SUMMARY_ROWS = (
    ("scheduled", "scheduled", "{:,}"),
    ("sent", "sent", "{:,}"),
    ("committed", "committed", "{:,}"),
    ("reverted", "reverted", "{:,}"),
    ("rejected", "rejected", "{:,}"),
    ("dropped", "dropped", "{:,}"),
    ("unsent", "unsent", "{:,}"),
    ("commit ratio", "commit_ratio", "{:.1%}"),
    ("latency p50", "latency_p50_s", "{:.3f} s"),
    ("latency p95", "latency_p95_s", "{:.3f} s"),
    ("latency p99", "latency_p99_s", "{:.3f} s"),
    ("planned rate", "planned_tps", "{:,.1f} tx/s"),
    ("offered rate", "offered_tps", "{:,.1f} tx/s"),
    ("committed rate", "throughput_tps", "{:.1f} tx/s"),
    ("schedule lag p99", "schedule_lag_p99_s", "{:.4f} s"),
    ("node answer p50", "answer_p50_s", "{:.4f} s"),
    ("node answer p99", "answer_p99_s", "{:.4f} s"),
)


def metric_rows(summary: dict[str, Any], keys: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """SUMMARY_ROWS formatted (those of ``keys`` only, when given); "–" where the run has no value."""
    return [
        (label, "–" if summary.get(key) is None else fmt.format(summary[key]))
        for label, key, fmt in SUMMARY_ROWS
        if keys is None or key in keys
    ]


def note_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """What the numbers alone do not say: the rounds' elections, interruptions, the generator, caveats."""
    rows = []
    for r in summary.get("rounds", []):
        ok = sum(p["expected"] for p in r["pools"])
        rows.append((f"round {r['round_id']}", f"{ok}/{len(r['pools'])} pools elected their model"))
    if summary.get("late"):
        rows.append((
            "late",
            f"{summary['late']:,} included after the commit deadline (by p50 {summary['late_p50_s']:.2f} s, max "
            f"{summary['late_max_s']:.2f} s): on the chain, counted as committed or reverted, not in the commit ratio",
        ))  # fmt: skip
    if summary.get("invalid"):
        rows += [("invalid", reason) for reason in summary["invalid"]["reasons"]]
    elif summary.get("generator_bound"):  # a summary written before runs had the INVALID verdict
        reason = (summary.get("generator") or {}).get("reason")
        rows.append(("generator-bound", reason or "the senders could not keep their schedule: this run measured the generator"))
    if summary.get("interrupted"):
        rows.append(("note", "the run was interrupted"))
    if summary.get("incomplete"):
        rows.append(("note", "the run was killed: only what it had flushed is here"))
    for caveat in summary.get("caveats", []):
        rows.append(("caveat", caveat))
    return rows


def verdict_of(summary: dict[str, Any]) -> str:
    """PASS, FAIL, INVALID or INTERRUPTED (engine/verdict.py), also for summaries written
    before the verdict was stored."""
    if summary.get("interrupted"):
        return "INTERRUPTED"
    return summary.get("verdict") or ("PASS" if summary.get("passed") else "FAIL")


def verdict(summary: dict[str, Any]) -> str:
    word = verdict_of(summary)
    if word == "INTERRUPTED":
        return "INTERRUPTED (no verdict: the run did not play out)"
    if word == "INVALID":
        return "INVALID (it did not offer its plan: no verdict on the chain)"
    return f"{word} (threshold {summary.get('threshold', 0):.0%})"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return [*metric_rows(summary), ("verdict", verdict(summary)), *note_rows(summary)]

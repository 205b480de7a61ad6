"""A run's report as one value: the headline, the series, the phases and breakdowns, the chain's
side and the configuration, built from the run folder's files (report/data.py computes each
part). Pure, so `loadgen report --json` and the page show the same numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.engine.profile import RateProfile
from loadgen.report.data import (
    Blocks,
    Clock,
    Group,
    Series,
    Span,
    Txpool,
    blocks_of,
    breakdown,
    clock_of,
    flatten_config,
    nullable,
    series_of,
    spans_of,
    txpool_of,
)
from loadgen.report.summary import floats, planned_rate, verdict_of


@dataclass(frozen=True)
class Headline:
    """The row at the top of the page."""

    duration_s: float
    planned: int | None
    scheduled: int
    sent: int
    committed: int
    planned_tps: float | None  # every slot / the time they were scheduled over
    offered_tps: float | None  # what was sent / the time from the first slot to the last send
    committed_tps: float | None
    commit_ratio: float
    threshold: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    passed: bool
    verdict: str  # PASS, FAIL, INVALID or INTERRUPTED (engine/verdict.py)
    reasons: tuple[str, ...]  # of an INVALID verdict


def headline_of(summary: dict[str, Any], manifest: dict[str, Any], clock: Clock, table: pa.Table) -> Headline:
    scheduled = floats(table.column("t_scheduled"))
    span = float(scheduled.max() - scheduled.min()) if scheduled.size else 0.0
    return Headline(
        duration_s=clock.span_s,
        planned=manifest.get("planned_transactions"),
        scheduled=summary["scheduled"],
        sent=summary["scheduled"] - summary["unsent"],
        committed=summary["committed"],
        planned_tps=summary.get("planned_tps", summary["scheduled"] / span if span > 0 else None),
        offered_tps=summary.get("offered_tps"),
        committed_tps=summary.get("throughput_tps"),
        commit_ratio=summary["commit_ratio"],
        threshold=summary["threshold"],
        latency_p50_s=summary.get("latency_p50_s"),
        latency_p95_s=summary.get("latency_p95_s"),
        latency_p99_s=summary.get("latency_p99_s"),
        passed=bool(summary.get("passed")),
        verdict=verdict_of(summary),
        reasons=tuple((summary.get("invalid") or {}).get("reasons", ())),
    )


@dataclass(frozen=True)
class RunReport:
    run_id: str
    summary: dict[str, Any]
    manifest: dict[str, Any]
    clock: Clock
    headline: Headline
    series: Series
    phases: list[Span]
    endpoints: list[Group]
    phase_groups: list[Group]
    blocks: Blocks | None
    txpool: Txpool | None
    config: list[tuple[str, str]]
    latencies_s: np.ndarray  # every committed transaction's, sorted
    planned_tps: np.ndarray | None  # per window, what the workload's rate profile asked for

    def to_dict(self) -> dict[str, Any]:
        """What `loadgen report --json` prints: plain JSON, NaN as null."""
        return {
            "run_id": self.run_id,
            "headline": asdict(self.headline),
            "summary": self.summary,
            "window_s": self.clock.window_s,
            "series": self.series.to_dict() | ({"planned_tps": nullable(self.planned_tps)} if self.planned_tps is not None else {}),
            "phases": [asdict(p) for p in self.phases],
            "by_phase": [g.to_dict() for g in self.phase_groups],
            "by_endpoint": [g.to_dict() for g in self.endpoints],
            "blocks": self.blocks.stats() if self.blocks is not None else None,
            "txpool": self.txpool.stats() if self.txpool is not None else None,
            "config": dict(self.config),
        }


def build(run_dir: Path, table: pa.Table, summary: dict[str, Any], manifest: dict[str, Any]) -> RunReport:
    """Everything the page, the figures and --json show of one run with at least one row."""
    clock = clock_of(table)
    ok = pc.equal(table.column("status"), "committed")
    phase_groups = breakdown(table, "phase", clock, summary["threshold"])
    return RunReport(
        run_id=summary["run_id"],
        summary=summary,
        manifest=manifest,
        clock=clock,
        headline=headline_of(summary, manifest, clock, table),
        series=series_of(table, clock),
        phases=spans_of(phase_groups, clock),
        endpoints=breakdown(table, "endpoint", clock, summary["threshold"]),
        phase_groups=phase_groups,
        blocks=blocks_of(run_dir, clock),
        txpool=txpool_of(run_dir, clock),
        config=flatten_config(manifest.get("config", {})),
        latencies_s=np.sort(floats(table.filter(ok).column("latency_s"))),
        planned_tps=planned_series(planned_rate(manifest), clock),
    )


def planned_series(profile: RateProfile | None, clock: Clock) -> np.ndarray | None:
    """The profile's expected arrivals per second in each window (it starts at the first scheduled transaction)."""
    if profile is None:
        return None
    starts = clock.edges[:-1]
    return np.array([profile.count_between(t, t + clock.window_s) for t in starts]) / clock.window_s

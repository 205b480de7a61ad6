"""What a run's rows add up to: counts by status, the commit ratio, latency and lag."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.collector import STATUSES


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def summarize(table: pa.Table, threshold: float) -> dict[str, Any]:
    """Every scheduled transaction is one row with one status; all but committed count against
    the commit ratio, as the attempts they are."""
    status = table.column("status")
    counts = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in STATUSES}
    submitted = table.num_rows
    committed = table.filter(pc.equal(status, "committed"))
    latency = committed.column("latency_s").to_numpy(zero_copy_only=False)
    sent = table.filter(pc.is_valid(table.column("t_sent")))
    lag = (
        (sent.column("t_sent").to_numpy(zero_copy_only=False) - sent.column("t_scheduled").to_numpy(zero_copy_only=False))
        if sent.num_rows
        else np.array([])
    )
    if committed.num_rows:
        start = float(pc.min(table.column("t_scheduled")).as_py())
        end = float(pc.max(committed.column("t_included")).as_py())
        throughput = committed.num_rows / (end - start) if end > start else None
    else:
        throughput = 0.0
    ratio = counts["committed"] / submitted if submitted else 0.0
    return {
        "submitted": submitted,
        **counts,
        "commit_ratio": ratio,
        "threshold": threshold,
        "passed": bool(submitted) and ratio >= threshold,
        "latency_p50_s": _percentile(latency, 50),
        "latency_p95_s": _percentile(latency, 95),
        "latency_p99_s": _percentile(latency, 99),
        "latency_max_s": float(latency.max()) if latency.size else None,
        "throughput_tps": throughput,
        "schedule_lag_p50_s": _percentile(lag, 50),
        "schedule_lag_p99_s": _percentile(lag, 99),
        "resends": int(pc.sum(table.column("resends")).as_py() or 0),
    }

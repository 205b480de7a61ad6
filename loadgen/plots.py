"""PNG figures of a run, drawn from its Parquet rows (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa

from loadgen.profile import RateProfile
from loadgen.schema import STATUSES

COLORS = {"committed": "#2a9d8f", "reverted": "#e76f51", "rejected": "#f4a261", "dropped": "#6d597a", "unsent": "#adb5bd"}


def _np(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False).astype(float)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rates(table: pa.Table, path: Path, planned: RateProfile | None = None) -> Path:
    """Scheduled vs committed transactions per second, by the second, and the rate the workload
    asked for (its profile, from the first scheduled transaction on) when it has one."""
    scheduled = _np(table, "t_scheduled")
    start = np.nanmin(scheduled)
    committed = _np(table, "t_included")[table.column("status").to_numpy(zero_copy_only=False) == "committed"]
    end = max(np.nanmax(scheduled), np.nanmax(committed) if committed.size else 0) - start
    bins = np.arange(0, end + 2, 1.0)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.step(bins[:-1], np.histogram(scheduled - start, bins)[0], where="post", label="scheduled", color="#264653")
    ax.step(bins[:-1], np.histogram(committed - start, bins)[0], where="post", label="committed", color=COLORS["committed"])
    if planned is not None:
        seconds = np.arange(0, planned.duration_s, 1.0)
        expected = [planned.count_between(t, min(t + 1, planned.duration_s)) for t in seconds]
        ax.step(seconds, expected, where="post", ls="--", color="#adb5bd", label="planned (profile)")
    ax.set(xlabel="seconds since the first scheduled transaction", ylabel="transactions / s", title="Offered and committed rate")
    ax.legend()
    return _save(fig, path)


def latency(table: pa.Table, path: Path) -> Path:
    """Latency of committed transactions over time, with their CDF beside."""
    ok = table.column("status").to_numpy(zero_copy_only=False) == "committed"
    t = _np(table, "t_scheduled")
    start = np.nanmin(t)
    lat = _np(table, "latency_s")[ok]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [2, 1]})
    left.scatter(t[ok] - start, lat, s=4, alpha=0.5, color=COLORS["committed"])
    left.set(xlabel="scheduled at (s since start)", ylabel="latency (s)", title="Inclusion latency from the scheduled time")
    if lat.size:
        xs = np.sort(lat)
        right.plot(xs, np.arange(1, xs.size + 1) / xs.size, color="#264653")
        for q in (50, 95, 99):
            right.axvline(np.percentile(xs, q), ls=":", color="grey")
    right.set(xlabel="latency (s)", ylabel="fraction committed within", title="Latency CDF", ylim=(0, 1.01))
    return _save(fig, path)


def commit_ratio(table: pa.Table, path: Path, threshold: float) -> Path:
    """Commit ratio of the transactions scheduled in each 5 s window, against the threshold."""
    t = _np(table, "t_scheduled")
    start = np.nanmin(t)
    ok = table.column("status").to_numpy(zero_copy_only=False) == "committed"
    bins = np.arange(0, np.nanmax(t) - start + 5.0, 5.0)
    total = np.histogram(t - start, bins)[0]
    good = np.histogram(t[ok] - start, bins)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total > 0, good / total, np.nan)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(bins[:-1], ratio, marker="o", color=COLORS["committed"], label="commit ratio")
    ax.axhline(threshold, ls="--", color="#e63946", label=f"threshold {threshold:.0%}")
    ax.set(
        xlabel="scheduled at (s since start, 5 s windows)", ylabel="committed / scheduled", ylim=(0, 1.05), title="Commit ratio over time"
    )
    ax.legend()
    return _save(fig, path)


def outcomes(table: pa.Table, path: Path) -> Path:
    status = table.column("status").to_numpy(zero_copy_only=False)
    counts = [int((status == s).sum()) for s in STATUSES]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(STATUSES, counts, color=[COLORS[s] for s in STATUSES])
    ax.bar_label(bars)
    ax.set(ylabel="transactions", title="Outcomes")
    return _save(fig, path)


def compare(tables: dict[str, pa.Table], path: Path) -> Path:
    """Several runs side by side: latency CDFs and commit ratios."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names, ratios = [], []
    for name, table in tables.items():
        status = table.column("status").to_numpy(zero_copy_only=False)
        lat = np.sort(_np(table, "latency_s")[status == "committed"])
        if lat.size:
            left.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=name)
        names.append(name)
        ratios.append((status == "committed").mean() if status.size else 0)
    left.set(xlabel="latency (s)", ylabel="fraction committed within", title="Latency CDF", ylim=(0, 1.01))
    left.legend(fontsize="small")
    right.barh(names, ratios, color=COLORS["committed"])
    right.set(xlim=(0, 1), xlabel="commit ratio", title="Commit ratio")
    return _save(fig, path)

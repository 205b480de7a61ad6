"""PNG figures of a run, drawn from its report data (matplotlib, no display needed). Every chart
over time shares the run's clock (seconds since the first scheduled transaction), its windows and
its phases, shaded; every line says which time it is binned by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from loadgen.report.compare import letter
from loadgen.report.data import Span, seconds
from loadgen.report.run_report import RunReport

COLORS = {"committed": "#2a9d8f", "reverted": "#e76f51", "rejected": "#f4a261", "dropped": "#6d597a", "unsent": "#adb5bd"}
OFFERED, SENT, FAILING, THRESHOLD, INK = "#264653", "#e9c46a", "#e76f51", "#e63946", "#264653"
PHASE_TINTS = ("#8ecae6", "#ffb703", "#b5838d", "#90be6d", "#cdb4db", "#f4a261")
MAX_PHASE_LABELS = 12  # beyond this (many epochs) only each phase's first span is named


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=144)
    plt.close(fig)
    return path


def _shade(ax: Axes, phases: list[Span], names: bool = True) -> None:
    """Each phase's span tinted by its kind (a phase that recurs every epoch keeps its tint) and named at the top."""
    tints: dict[str, str] = {}
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for p in phases:
        kind = p.name.split(" (epoch")[0]
        named = kind in tints
        tint = tints.setdefault(kind, PHASE_TINTS[len(tints) % len(PHASE_TINTS)])
        ax.axvspan(p.start_s, max(p.end_s, p.start_s + 1e-3), color=tint, alpha=0.18, lw=0, zorder=0)
        if names and (len(phases) <= MAX_PHASE_LABELS or not named):
            ax.text(p.start_s, 0.98, f" {p.name}", transform=top, va="top", ha="left", fontsize=7, color="#555", clip_on=True)


def _time_axis(ax: Axes, report: RunReport, binned_by: str | None, windowed: bool = True) -> None:
    """The run's clock on x (labelled unless ``binned_by`` is None), and room above the data for the phases' names."""
    ax.set_xlim(0, max(report.clock.span_s, report.clock.window_s))
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, bottom + (top - bottom) * 1.15)
    if binned_by is not None:
        how = f"{binned_by}, {report.clock.window_s:g} s windows" if windowed else binned_by
        ax.set_xlabel(f"seconds since the first scheduled transaction ({how})")


# Distinct dashes, widths and staggered markers: two lines with the same values stay both visible.
# A value between two gaps draws no line, so it always gets its marker.
def _line(ax: Axes, x: np.ndarray, y: np.ndarray, label: str, color: str, style: str, marker: str, order: int, **kw: Any) -> None:
    known = ~np.isnan(y)
    alone = known & ~np.concatenate(([False], known[:-1])) & ~np.concatenate((known[1:], [False]))
    marks = sorted(set(range(order, y.size, 4)) | set(np.flatnonzero(alone).tolist()))
    ax.plot(x, y, ls=style, marker=marker, markevery=marks, ms=5, lw=2.6 - 0.5 * order, color=color, label=label, zorder=3 + order, **kw)


def _legend_below(fig: Figure, ncols: int = 2) -> None:
    """Under the axes, so it never hides a line."""
    fig.legend(loc="outside lower center", ncols=ncols, fontsize="small", frameon=False)


def rates(report: RunReport, path: Path) -> Path:
    """Offered (scheduled), sent, committed and failing transactions per second, and the rate the
    workload's profile asked for when it has one."""
    s, w = report.series, report.clock.window_s
    x = s.t_s + w / 2
    fig, ax = plt.subplots(layout="constrained", figsize=(9, 4.3))
    _shade(ax, report.phases)
    if report.planned_tps is not None:
        ax.plot(x, report.planned_tps, color="#adb5bd", lw=1, label="planned (the workload's profile)", zorder=2)
    # a rate holds over its whole window: steps, not slopes between windows
    steps = {"drawstyle": "steps-mid"}
    _line(ax, x, s.scheduled_tps, "offered: scheduled, by scheduled time", OFFERED, "-", "o", 0, **steps)
    _line(ax, x, s.sent_tps, "sent, by send time", SENT, "--", "s", 1, **steps)
    _line(ax, x, s.committed_tps, "committed, by inclusion time", COLORS["committed"], "-.", "^", 2, **steps)
    _line(ax, x, s.failing_tps, "failing (reverted, rejected, dropped, unsent), by scheduled time", FAILING, ":", "x", 3, **steps)
    ax.set_ylim(bottom=0)
    _time_axis(ax, report, "each line by the time it names")
    ax.set(ylabel="transactions / s", title="Offered, sent, committed and failing rate")
    _legend_below(fig)
    return _save(fig, path)


def commit_ratio(report: RunReport, path: Path) -> Path:
    """Commit ratio of the transactions scheduled in each window, against the threshold."""
    s, w, threshold = report.series, report.clock.window_s, report.headline.threshold
    fig, ax = plt.subplots(layout="constrained", figsize=(9, 3.9))
    _shade(ax, report.phases)
    ax.plot(s.t_s + w / 2, s.commit_ratio, marker="o", ms=4, color=COLORS["committed"], label="committed / scheduled", zorder=3)
    ax.axhline(threshold, ls="--", color=THRESHOLD, label=f"threshold {threshold:.0%}", zorder=2)
    ax.set_ylim(0, 1.02)
    _time_axis(ax, report, "by scheduled time")
    ax.set(ylabel="commit ratio", title="Commit ratio of each window's scheduled transactions")
    _legend_below(fig)
    return _save(fig, path)


def latency(report: RunReport, path: Path) -> Path:
    """Latency percentiles of committed transactions over time, and their CDF with p50, p95 and p99 marked."""
    s, w = report.series, report.clock.window_s
    fig, (left, right) = plt.subplots(1, 2, layout="constrained", figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    _shade(left, report.phases)
    x = s.t_s + w / 2
    _line(left, x, s.latency_p50_s, "p50", COLORS["committed"], "-", "o", 0)
    _line(left, x, s.latency_p95_s, "p95", "#e9c46a", "--", "s", 1)
    _line(left, x, s.latency_p99_s, "p99", THRESHOLD, "-.", "^", 2)
    left.set_ylim(bottom=0)
    _time_axis(left, report, "by scheduled time")
    left.set(ylabel="latency (s)", title="Latency (scheduled → included) over time")
    _legend_below(fig, 3)
    lat = report.latencies_s
    if lat.size:
        right.plot(lat, np.arange(1, lat.size + 1) / lat.size, color=INK, lw=2)
        # the CDF's upper left stays empty: the legend naming each marked percentile goes there
        for q, color, style in ((50, COLORS["committed"], "--"), (95, "#e9c46a", "-."), (99, THRESHOLD, ":")):
            value = float(np.percentile(lat, q))
            right.axvline(value, ls=style, color=color, lw=1.4, label=f"p{q} = {seconds(value)}")
            right.plot([value], [q / 100], "o", color=color, ms=5)
        right.legend(fontsize="small", loc="upper left")
    else:
        right.text(0.5, 0.5, "nothing committed", ha="center", transform=right.transAxes)
    right.set(xlabel="latency (s)", ylabel="share of committed within", title="Latency CDF", ylim=(0, 1.02))
    return _save(fig, path)


def schedule_lag(report: RunReport, path: Path) -> Path:
    """How late sends left against their schedule (t_sent − t_scheduled): the generator's own delay."""
    s, w = report.series, report.clock.window_s
    fig, ax = plt.subplots(layout="constrained", figsize=(9, 3.9))
    _shade(ax, report.phases)
    x = s.t_s + w / 2
    _line(ax, x, s.lag_p50_s * 1e3, "p50", OFFERED, "-", "o", 0)
    _line(ax, x, s.lag_p99_s * 1e3, "p99", "#e9c46a", "--", "s", 1)
    _line(ax, x, s.lag_max_s * 1e3, "max", THRESHOLD, ":", "^", 2)
    ax.set_ylim(bottom=0)
    _time_axis(ax, report, "by scheduled time")
    ax.set(ylabel="send − schedule (ms)", title="Schedule lag")
    _legend_below(fig, 3)
    return _save(fig, path)


def blocks(report: RunReport, path: Path) -> Path:
    """The chain's side: block interval, how full blocks were, and the gas and transactions in them."""
    b = report.blocks
    assert b is not None
    fig, (interval, full, gas) = plt.subplots(3, 1, layout="constrained", figsize=(9, 7), sharex=True)
    width = max(min(np.nanmedian(b.interval_s) if b.t_s.size > 1 else 1.0, report.clock.window_s) * 0.8, 0.05)
    for ax in (interval, full, gas):
        _shade(ax, report.phases, names=ax is interval)
    interval.plot(b.t_s, b.interval_s, marker="o", ms=3, color=INK, lw=1)
    interval.set(ylabel="interval (s)", title="Blocks (by block timestamp)")
    interval.set_ylim(bottom=0)
    _time_axis(interval, report, None)
    full.bar(b.t_s, b.fullness * 100, width=width, color=COLORS["committed"], align="edge")
    full.set(ylabel="gas used / limit (%)")
    full.set_ylim(0, max(5.0, float(np.nanmax(b.fullness, initial=0) * 110)))
    gas.bar(b.t_s, b.gas_used / 1e6, width=width, color="#8ecae6", align="edge", label="gas used (Mgas)")
    gas.set(ylabel="gas used (Mgas)")
    count = gas.twinx()
    count.plot(b.t_s, b.tx_count, marker=".", ls="-", lw=1, color=FAILING, label="transactions")
    count.set_ylabel("transactions / block")
    count.set_ylim(bottom=0)
    _legend_below(fig)
    gas.set_xlabel("seconds since the first scheduled transaction (block timestamp)")
    return _save(fig, path)


def txpool(report: RunReport, path: Path) -> Path:
    """The nodes' pools: what waited for a block (pending) and behind a nonce gap (queued)."""
    p = report.txpool
    assert p is not None
    fig, ax = plt.subplots(layout="constrained", figsize=(9, 3.6))
    _shade(ax, report.phases)
    _line(ax, p.t_s, p.unique_pending, "pending, each once (the fullest pool)", COLORS["committed"], "-", "o", 0)
    _line(ax, p.t_s, p.queued.sum(axis=0), "queued, all nodes", FAILING, "--", "s", 1)
    if len(p.endpoints) > 1:
        for i, (endpoint, row) in enumerate(zip(p.endpoints, p.pending, strict=True)):
            ax.plot(p.t_s, row, lw=0.8, alpha=0.6, color=f"C{i % 10}", label=f"pending, {endpoint}")
    ax.set_ylim(bottom=0)
    _time_axis(ax, report, "by sample time", windowed=False)
    ax.set(ylabel="transactions", title="Transaction pools (txpool_status)")
    _legend_below(fig, 3)
    return _save(fig, path)


def compare(tables: dict[str, pa.Table], thresholds: dict[str, float], path: Path) -> Path:
    """Several runs side by side: latency CDFs and commit ratios against each run's threshold.
    Runs are lettered A, B, … in both panels; the legend names them."""
    fig, (left, right) = plt.subplots(1, 2, layout="constrained", figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1.2]})
    letters, ratios = [], []
    for i, (name, table) in enumerate(tables.items()):
        mark = letter(i)
        status = table.column("status").to_numpy(zero_copy_only=False)
        lat = np.sort(table.column("latency_s").to_numpy(zero_copy_only=False).astype(float)[status == "committed"])
        color = f"C{i % 10}"
        if lat.size:
            left.plot(lat, np.arange(1, lat.size + 1) / lat.size, color=color, label=f"{mark}  {name}")
        else:
            left.plot([], [], color=color, label=f"{mark}  {name} (nothing committed)")
        letters.append(mark)
        ratios.append(float((status == "committed").mean()) if status.size else 0.0)
    left.set(xlabel="latency (s)", ylabel="share of committed within", title="Latency CDF", ylim=(0, 1.02))
    left.legend(fontsize="small", loc="lower right")
    x = np.arange(len(letters))
    bars = right.bar(x, ratios, color=COLORS["committed"], width=0.6)
    right.bar_label(bars, labels=[f"{r:.0%}" for r in ratios], fontsize=8)
    for i, threshold in enumerate(thresholds.values()):
        right.hlines(threshold, i - 0.4, i + 0.4, colors=THRESHOLD, linestyles="--", label="threshold" if i == 0 else None)
    right.set_xticks(x, letters)
    right.set(ylim=(0, 1.25), ylabel="commit ratio", title="Commit ratio")  # headroom: the legend sits above the bars
    right.legend(fontsize="small", loc="upper right")
    return _save(fig, path)


def compare_over_time(reports: list[RunReport], path: Path) -> Path:
    """Several runs over time on one clock (seconds from each run's first scheduled
    transaction): their committed rates, and their latency p95 by scheduled time."""
    fig, (top, bottom) = plt.subplots(2, 1, layout="constrained", figsize=(11, 6), sharex=True)
    for i, report in enumerate(reports):
        s, w = report.series, report.clock.window_s
        name = f"{letter(i)}  {report.run_id}"
        mid = s.t_s + w / 2
        top.plot(mid, s.committed_tps, color=f"C{i % 10}", marker="o", ms=3, label=name)
        top.plot(mid, s.scheduled_tps, color=f"C{i % 10}", ls=":", lw=1)
        bottom.plot(mid, s.latency_p95_s, color=f"C{i % 10}", marker="o", ms=3, label=name)
    top.plot([], [], color=INK, ls=":", lw=1, label="offered (scheduled), each run's colour")
    top.set(ylabel="tx/s", title="Committed rate (by inclusion time) and offered rate")
    top.set_ylim(bottom=0)
    top.legend(fontsize="small", loc="upper right")
    bottom.set(xlabel="seconds from each run's first scheduled transaction", ylabel="seconds", title="Latency p95 (by scheduled time)")
    bottom.set_ylim(bottom=0)
    return _save(fig, path)


def figures(report: RunReport, out: Path) -> dict[str, Path]:
    """The run's figures by name; none for a run without rows, no block chart without blocks."""
    out.mkdir(parents=True, exist_ok=True)
    if not report.summary["scheduled"]:
        return {}
    drawn = {
        "rates": rates(report, out / "rates.png"),
        "commit_ratio": commit_ratio(report, out / "commit_ratio.png"),
        "latency": latency(report, out / "latency.png"),
        "schedule_lag": schedule_lag(report, out / "schedule_lag.png"),
    }
    if report.blocks is not None:
        drawn["blocks"] = blocks(report, out / "blocks.png")
    if report.txpool is not None:
        drawn["txpool"] = txpool(report, out / "txpool.png")
    return drawn

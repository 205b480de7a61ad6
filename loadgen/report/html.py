"""One self-contained HTML page per run: a headline row, the charts over time (inlined PNGs), the
breakdowns by phase and by endpoint, the blocks, the outcomes and the configuration as a table.
Nothing is fetched from elsewhere: the file opens the same offline, attached to a ticket, in ten
years."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loadgen.engine.schema import STATUSES
from loadgen.report.compare import Comparison, letter
from loadgen.report.data import Group, seconds
from loadgen.report.run_report import RunReport
from loadgen.report.summary import metric_rows, note_rows, verdict

DETAIL_KEYS = ("throughput_tps", "schedule_lag_p99_s", "answer_p50_s", "answer_p99_s")
DETAIL_COUNTS = ("resends", "recovered", "failovers", "odd_answers", "unconfirmed", "actors_replaced")

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:1.2em 2em 3em;color:#1d2b33;background:#fafbfc}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:2em 0 .6em;border-bottom:2px solid #e3e7ea;padding-bottom:.2em}
.meta{color:#5a6b75;margin:0 0 1em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(145px,1fr));gap:.8em}
.card{background:#fff;border:1px solid #e3e7ea;border-radius:8px;padding:.7em 1em}
.card .label{color:#5a6b75;font-size:.8em;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:1.45em;font-weight:600;white-space:nowrap}.card .sub{color:#5a6b75;font-size:.85em}
.good{border-left:5px solid #2a9d8f}.bad{border-left:5px solid #e63946}.warn{border-left:5px solid #f4a261}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(620px,1fr));gap:1em}
figure{margin:0;background:#fff;border:1px solid #e3e7ea;border-radius:8px;padding:.5em}
figure img{width:100%;height:auto;display:block}figure.wide{grid-column:1/-1}figure.wide img{max-width:1300px;margin:auto}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
th,td{padding:.3em .6em;border-bottom:1px solid #e3e7ea;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}thead th{background:#f0f3f5}
table.kv td{text-align:left;white-space:normal;word-break:break-word}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1.5em;align-items:start}
.note{color:#5a6b75}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def duration(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:#.3g} tx/s" if value < 100 else f"{value:,.0f} tx/s"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    sub_html = f"<div class='sub'>{_e(sub)}</div>" if sub else ""
    return f"<div class='card {tone}'><div class='label'>{_e(label)}</div><div class='value'>{_e(value)}</div>{sub_html}</div>"


def _table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table class='{cls}'>{head}<tbody>{body}</tbody></table></div>"


_VERDICT_NOTES = {
    "PASS": "commit ratio ≥ threshold",
    "FAIL": "commit ratio < threshold",
    "INVALID": "it did not offer its plan: no verdict on the chain",
    "INTERRUPTED": "the run did not play out",
}


def headline(report: RunReport) -> str:
    h = report.headline
    counts = f"of {h.scheduled:,} scheduled · {h.sent:,} sent" + (f" · {h.planned:,} planned" if h.planned is not None else "")
    cards = [
        _card("duration", duration(h.duration_s), "first scheduled → last event"),
        _card(
            "offered rate",
            rate(h.offered_tps),
            f"of {rate(h.planned_tps)} planned" if h.planned_tps else "sent / sending time",
            "bad" if h.verdict == "INVALID" else "",
        ),
        _card("committed rate", rate(h.committed_tps), "committed / duration"),
        _card("committed", f"{h.committed:,}", counts),
        _card("commit ratio", percent(h.commit_ratio), f"threshold {h.threshold:.0%}", "good" if h.commit_ratio >= h.threshold else "bad"),
        _card("latency p50", seconds(h.latency_p50_s), "scheduled → included"),
        _card("latency p95", seconds(h.latency_p95_s)),
        _card("latency p99", seconds(h.latency_p99_s)),
        _card("verdict", h.verdict, _VERDICT_NOTES[h.verdict], "good" if h.passed else "warn" if h.verdict == "INVALID" else "bad"),
    ]
    cards += [_card("invalid", "why", reason, "warn") for reason in h.reasons]
    return "<div class='cards'>" + "".join(cards) + "</div>"


def _img(path: Path, alt: str, wide: bool = False) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure class='{'wide' if wide else ''}'><img alt='{_e(alt)}' src='data:image/png;base64,{data}'></figure>"


GROUP_HEADER = ("scheduled", "sent", "committed", "reverted", "rejected", "dropped", "unsent", "commit ratio", "committed rate")
LATENCY_HEADER = ("latency p50", "latency p95", "latency p99", "schedule lag p99", "node answer p50")


def _group_row(g: Group) -> list[str]:
    s = g.summary
    counts = [f"{s[k]:,}" for k in ("scheduled", "sent", *STATUSES)]
    latencies = [seconds(s.get(k)) for k in ("latency_p50_s", "latency_p95_s", "latency_p99_s", "schedule_lag_p99_s", "answer_p50_s")]
    return [*counts, percent(s["commit_ratio"]), rate(s.get("throughput_tps")), *latencies]


def phase_table(groups: list[Group]) -> str:
    header = ("phase", "scheduled at", "planned rate", "offered rate", *GROUP_HEADER, *LATENCY_HEADER)
    rows = [
        [g.key, f"{g.first_s:.1f}–{g.last_s:.1f} s", rate(g.summary.get("planned_tps")), rate(g.summary.get("offered_tps")), *_group_row(g)]
        for g in groups
    ]
    return _table(header, rows)


def endpoint_table(groups: list[Group]) -> str:
    return _table(("endpoint", *GROUP_HEADER, *LATENCY_HEADER), [[g.key, *_group_row(g)] for g in groups])


def outcomes(report: RunReport) -> str:
    s = report.summary
    total = s["scheduled"] or 1
    rows = [[status, f"{s[status]:,}", percent(s[status] / total)] for status in STATUSES]
    details = metric_rows(s, DETAIL_KEYS) + [(k.replace("_", " "), f"{s[k]:,}") for k in DETAIL_COUNTS if s.get(k) is not None]
    details += [("verdict", verdict(s)), *note_rows(s)]
    for phase, gas in (s.get("gas_limits") or {}).items():
        details.append((f"gas limit ({phase})", f"{gas:,}"))
    return "<div class='columns'>" + _table(("status", "transactions", "of scheduled"), rows) + _table(None, details, "kv") + "</div>"


def chain_section(report: RunReport, figs: dict[str, Path]) -> str:
    b = report.blocks
    if b is None:
        return "<p class='note'>No blocks were recorded in this run folder (blocks.parquet is missing or empty).</p>"
    st = b.stats()
    rows = [
        ("blocks while the run was on", f"{st['blocks']:,}"),
        ("interval mean / max", f"{seconds(st['interval_mean_s'])} / {seconds(st['interval_max_s'])}"),
        ("gas used / limit mean / max", f"{percent(st['fullness_mean'])} / {percent(st['fullness_max'])}"),
        ("gas used", f"{st['gas_used']:,}"),
        ("transactions per block mean / max", f"{st['tx_per_block_mean'] or 0:.1f} / {st['tx_per_block_max'] or 0:.0f}"),
    ]
    chart = _img(figs["blocks"], "blocks") if "blocks" in figs else ""
    pools = ""
    if report.txpool is not None:
        tp = report.txpool.stats()
        pool_rows = [
            ("pool samples", f"{tp['samples']:,}"),
            ("pending, each once: max / mean", f"{tp['pending_max']:,} / {tp['pending_mean']:,.0f}"),
            ("queued, all nodes: max", f"{tp['queued_max']:,}"),
        ]
        pool_chart = _img(figs["txpool"], "txpool") if "txpool" in figs else ""
        pools = f"<div class='columns'>{pool_chart}{_table(None, pool_rows, 'kv')}</div>"
    return f"<div class='columns'>{chart}{_table(None, rows, 'kv')}</div>{pools}"


def run_facts(report: RunReport) -> list[tuple[str, str]]:
    m = report.manifest
    chain = m.get("chain", {})
    facts = [
        ("chain id", chain.get("chain_id")),
        ("client", chain.get("client_version")),
        ("embedded devnet", (m.get("devnet") or {}).get("client") if m.get("embedded_devnet") else "no"),
        ("endpoints", ", ".join(m.get("endpoints", []))),
        ("workers / sender actors", f"{m['workers']} / {m['actors']}" if "workers" in m and "actors" in m else None),
        ("started", m.get("started")),
        ("ended", m.get("ended")),
        ("loadgen", m.get("loadgen_version")),
    ]
    return [(k, str(v)) for k, v in facts if v not in (None, "")]


def config_tables(rows: list[tuple[str, str]]) -> str:
    """One table per top-level section (chain, workload, run…), side by side."""
    sections: dict[str, list[tuple[str, str]]] = {}
    for key, value in rows:
        sections.setdefault(key.split(".")[0], []).append((key, value))
    return "<div class='columns'>" + "".join(_table(("key", "value"), r, "kv") for r in sections.values()) + "</div>"


def page(report: RunReport, figs: dict[str, Path]) -> str:
    def charts(*names: str, wide: tuple[str, ...] = ()) -> str:
        inner = "".join(_img(figs[n], n.replace("_", " "), wide=n in wide) for n in names if n in figs)
        return f"<div class='figs'>{inner}</div>" if inner else "<p class='note'>No transactions: nothing to draw.</p>"

    run_id = _e(report.run_id)
    meta = " · ".join(f"{_e(k)} {_e(v)}" for k, v in run_facts(report)[:3])
    window = f"charts in {report.clock.window_s:g} s windows; shaded: the phases"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgen run {run_id}</title><style>{CSS}</style></head>
<body><h1>loadgen run {run_id}</h1><p class="meta">{meta}</p>
{headline(report)}
<h2>Load over time</h2><p class="note">{_e(window)}</p>{charts("rates", "commit_ratio", "schedule_lag", wide=("rates",))}
<h2>Latency</h2>{charts("latency", wide=("latency",))}
<h2>By phase</h2>{phase_table(report.phase_groups)}
<h2>By endpoint</h2>{endpoint_table(report.endpoints)}
<h2>Chain</h2>{chain_section(report, figs)}
<h2>Outcomes</h2>{outcomes(report)}
<h2>Run</h2>{_table(None, run_facts(report), "kv")}
<h2>Configuration</h2><p class="note">each key as <code>--set</code> takes it</p>{config_tables(report.config)}
</body></html>
"""


def compare_page(comparison: Comparison, figs: dict[str, Path]) -> str:
    """The runs side by side: what each is, the summary rows with the change from run A, the
    configuration keys that differ, and the figures overlaid."""
    names = comparison.names
    letters = [letter(i) for i in range(len(names))]
    runs = _table(("", "run"), zip(letters, names, strict=True))
    header = ("", *letters, *(f"{x} vs A" for x in letters[1:]))
    rows = _table(header, [(label, *values, *changes) for label, values, changes in comparison.rows()])
    differences = comparison.config_differences()
    config = _table(("key", *letters), [(k, *v) for k, v in differences]) if differences else "<p class='note'>The same configuration.</p>"
    charts = "".join(_img(path, name.replace("_", " "), wide=True) for name, path in figs.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>loadgen: {len(names)} runs compared</title><style>{CSS}</style></head>
<body><h1>{len(names)} runs compared</h1>{runs}
<h2>Summary</h2><p class="note">changes from run A: relative, or in points for the commit ratio</p>{rows}
<h2>Configuration differences</h2>{config}
<h2>Figures</h2><div class='figs'>{charts}</div>
</body></html>
"""


def write(run_dir: Path, report: RunReport, figs: dict[str, Path]) -> Path:
    path = run_dir / "report.html"
    path.write_text(page(report, figs))
    return path

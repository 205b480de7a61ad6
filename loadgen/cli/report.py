"""`loadgen report RUN_DIR [RUN_DIR ...]`: per run, a summary table, PNG figures and a
self-contained HTML page (plots/ and report.html in the run folder); with several runs, a
side-by-side table and a comparison figure. `--json` prints the report's numbers instead of the
tables: one object for one run, a list for several."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen.report import html as report_html
from loadgen.report import run_report
from loadgen.report.compare import Comparison, letter
from loadgen.report.data import Group
from loadgen.report.reconcile import reconcile
from loadgen.report.summary import load_run, summary_rows

EXAMPLES = r"""examples:
  loadgen report runs/20261125-120316-quickstart-3aba
  loadgen report runs/RUN_A runs/RUN_B --out comparisons/
  loadgen report runs/RUN_A --json > report.json
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="summarise, plot and compare runs", description=__doc__, epilog=EXAMPLES)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, e.g. runs/20261125-120316-quickstart-3aba")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for the comparison of several runs: figures, compare.html, compare.json (default: beside the first run)",
    )
    p.add_argument("--offline", action="store_true", help="do not look the run's dropped transactions up again on its endpoints")
    p.add_argument("--json", action="store_true", help="print the report's numbers as JSON on stdout (the tables go to stderr)")


def whole_console(stderr: bool = False) -> Console:
    """A console that never cuts a value: on a terminal its width, elsewhere (a pipe, a file, a CI
    log) as wide as the widest line, since a reader of the text cannot widen it afterwards."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=100_000)


def summary_table(summary: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"run {summary['run_id']}", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", overflow="fold")
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    return table


GROUP_COLUMNS = (
    ("scheduled", "scheduled", "{:,}"),
    ("committed", "committed", "{:,}"),
    ("failed", None, "{:,}"),
    ("commit ratio", "commit_ratio", "{:.1%}"),
    ("offered", "offered_tps", "{:,.1f} tx/s"),
    ("latency p50", "latency_p50_s", "{:.3f} s"),
    ("latency p99", "latency_p99_s", "{:.3f} s"),
)


def group_table(title: str, groups: list[Group]) -> Table:
    """One row per phase or endpoint: counts, ratio, offered rate and latency."""
    table = Table(title=title)
    table.add_column("", no_wrap=True)
    for label, _, _ in GROUP_COLUMNS:
        table.add_column(label, justify="right")
    for g in groups:
        s = g.summary
        values = [s["scheduled"] - s["committed"] if key is None else s.get(key) for _, key, _ in GROUP_COLUMNS]
        table.add_row(g.key, *("–" if v is None else fmt.format(v) for v, (_, _, fmt) in zip(values, GROUP_COLUMNS, strict=True)))
    return table


def compare_runs(console: Console, reports: list[run_report.RunReport], out: Path, tables: dict[str, Any]) -> Comparison:
    """The runs side by side in the terminal and, under ``out``, as figures, a page and JSON."""
    from loadgen.report import plots

    comparison = Comparison(reports)
    letters = [letter(i) for i in range(len(reports))]
    for x, name in zip(letters, comparison.names, strict=True):
        console.print(f"{x}  {name}", soft_wrap=True, highlight=False)
    side = Table(title="runs side by side")
    side.add_column("", no_wrap=True)
    for x in letters:
        side.add_column(x, justify="right")
    for x in letters[1:]:
        side.add_column(f"{x} vs A", justify="right")
    for label, values, changes in comparison.rows():
        side.add_row(label, *values, *changes)
    console.print(side)
    differences = comparison.config_differences()
    if differences:
        config = Table(title="configuration differences")
        config.add_column("key", no_wrap=True)
        for x in letters:
            config.add_column(x)
        for key, values in differences:
            config.add_row(key, *values)
        console.print(config)
    else:
        console.print("configuration: the same in every run")
    out.mkdir(parents=True, exist_ok=True)
    thresholds = {r.run_id: r.summary["threshold"] for r in reports}
    figs = {
        "compare": plots.compare(tables, thresholds, out / "compare.png"),
        "over_time": plots.compare_over_time(reports, out / "compare_over_time.png"),
    }
    (out / "compare.html").write_text(report_html.compare_page(comparison, figs))
    (out / "compare.json").write_text(json.dumps(_plain(comparison.to_dict()), indent=2, allow_nan=False) + "\n")
    console.print(f"comparison: {out / 'compare.html'}, figures and compare.json in {out}", soft_wrap=True)
    return comparison


def _plain(data: Any) -> Any:
    """JSON without NaN (not JSON) or numpy scalars."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if isinstance(data, float) and data != data:
        return None
    if hasattr(data, "item"):
        return _plain(data.item())
    return data


def run(args: argparse.Namespace) -> int:
    from loadgen.report import plots  # matplotlib: loaded only when a report is drawn

    console = whole_console(stderr=args.json)
    loaded: dict[str, tuple[Any, dict[str, Any]]] = {}
    reports: list[dict[str, Any]] = []
    rendered: list[run_report.RunReport] = []
    for run_dir in args.runs:
        table, summary, manifest = load_run(run_dir)
        landed = None if args.offline else reconcile(run_dir, table, manifest.get("endpoints", []))
        rep = run_report.build(run_dir, table, summary, manifest)
        figs = plots.figures(rep, run_dir / "plots")
        page = report_html.write(run_dir, rep, figs)
        loaded[run_dir.name] = (table, summary)
        reports.append(rep.to_dict() | ({"landed_after_run": asdict(landed)} if landed else {}))
        rendered.append(rep)
        if len(args.runs) == 1:
            console.print(summary_table(summary))
            for title, groups in (("by phase", rep.phase_groups), ("by endpoint", rep.endpoints)):
                if len(groups) > 1:
                    console.print(group_table(title, groups))
        if landed is not None:
            console.print(landed.line(), soft_wrap=True)
        console.print(f"{run_dir.name}: {page} and {len(figs)} figures in {run_dir / 'plots'}", soft_wrap=True)
    if len(rendered) > 1:
        out = args.out or args.runs[0].parent / f"compare-{rendered[0].run_id}-and-{len(rendered) - 1}-more"
        comparison = compare_runs(console, rendered, out, {name: t for name, (t, _) in loaded.items()})
        if args.json:
            reports.append({"comparison": comparison.to_dict()})
    if args.json:
        json.dump(_plain(reports[0] if len(reports) == 1 else reports), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    return 0

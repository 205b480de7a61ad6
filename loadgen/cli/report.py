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
    p.add_argument("--out", type=Path, help="where the comparison of several runs goes (default: beside the first run)")
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
    reports = []
    for run_dir in args.runs:
        table, summary, manifest = load_run(run_dir)
        landed = None if args.offline else reconcile(run_dir, table, manifest.get("endpoints", []))
        rep = run_report.build(run_dir, table, summary, manifest)
        figs = plots.figures(rep, run_dir / "plots")
        page = report_html.write(run_dir, rep, figs)
        loaded[run_dir.name] = (table, summary)
        reports.append(rep.to_dict() | ({"landed_after_run": asdict(landed)} if landed else {}))
        if len(args.runs) == 1:
            console.print(summary_table(summary))
        if landed is not None:
            console.print(landed.line(), soft_wrap=True)
        console.print(f"{run_dir.name}: {page} and {len(figs)} figures in {run_dir / 'plots'}", soft_wrap=True)
    if len(loaded) > 1:
        side = Table(title="runs side by side")
        side.add_column("", no_wrap=True)
        for name in loaded:
            side.add_column(name, justify="right")
        columns = [dict(summary_rows(s)) for _, s in loaded.values()]
        labels = list(dict.fromkeys(label for c in columns for label in c))  # every run's rows, in order
        for label in labels:
            side.add_row(label, *(c.get(label, "–") for c in columns))
        console.print(side)
        out = args.out or args.runs[0].parent
        out.mkdir(parents=True, exist_ok=True)
        thresholds = {name: s["threshold"] for name, (_, s) in loaded.items()}
        path = plots.compare({name: t for name, (t, _) in loaded.items()}, thresholds, out / "compare.png")
        console.print(f"comparison: {path}", soft_wrap=True)
    if args.json:
        json.dump(_plain(reports[0] if len(reports) == 1 else reports), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    return 0

"""`loadgen report RUN_DIR [RUN_DIR ...]`: summary tables, PNG figures and an HTML page per run;
with several runs, a side-by-side table and a comparison figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadgen import plots
from loadgen.report import figures, html_report, load_run, summary_rows


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="summarise, plot and compare runs", description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, e.g. runs/20261125-120316-quickstart-3aba")
    p.add_argument("--out", type=Path, help="where the comparison of several runs goes (default: beside the first run)")


def summary_table(summary: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"run {summary['run_id']}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for k, v in summary_rows(summary):
        table.add_row(k, v)
    return table


def run(args: argparse.Namespace) -> int:
    console = Console()
    loaded = {}
    for run_dir in args.runs:
        table, summary, manifest = load_run(run_dir)
        figs = figures(table, summary, run_dir / "plots", manifest)
        page = html_report(run_dir, summary, manifest, figs)
        loaded[run_dir.name] = (table, summary)
        if len(args.runs) == 1:
            console.print(summary_table(summary))
        console.print(f"{run_dir.name}: {page} and {len(figs)} figures in {run_dir / 'plots'}")
    if len(loaded) > 1:
        side = Table(title="runs side by side")
        side.add_column("")
        for name in loaded:
            side.add_column(name, justify="right")
        labels = [label for label, _ in summary_rows(next(iter(loaded.values()))[1])]
        columns = [dict(summary_rows(s)) for _, s in loaded.values()]
        for label in labels:
            side.add_row(label, *(c.get(label, "–") for c in columns))
        console.print(side)
        out = args.out or args.runs[0].parent
        out.mkdir(parents=True, exist_ok=True)
        path = plots.compare({name: t for name, (t, _) in loaded.items()}, out / "compare.png")
        console.print(f"comparison: {path}")
    return 0

"""`loadgen run CONFIG`: one experiment on the chain, live progress, a run folder, an exit code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from loadgen import config
from loadgen.cli import types
from loadgen.cli.report import summary_table
from loadgen.metrics import DEFAULT_PORT
from loadgen.preview import preview
from loadgen.run import Progress, Run


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="run an experiment file", description=__doc__)
    p.add_argument("config", help="experiment YAML, e.g. configs/quickstart.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. workload.pace_s=0.25",
    )
    p.add_argument("--endpoints", type=types.endpoint_list, help="comma-separated RPC URLs (overrides chain.endpoints)")
    p.add_argument("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="folder for run folders (default ./runs)")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument(
        "--metrics-port",
        type=types.port,
        default=DEFAULT_PORT,
        help=f"Prometheus endpoint port; 0 picks a free one (default {DEFAULT_PORT})",
    )
    p.add_argument("--metrics-bind", default="0.0.0.0", help="address the metrics endpoint listens on (default 0.0.0.0)")
    p.add_argument("--dry-run", action="store_true", help="check the experiment and print its plan; start nothing")


def load_experiment(args: argparse.Namespace) -> config.Experiment:
    overrides = config.parse_overrides(args.overrides)
    if args.endpoints is not None:
        overrides["chain.endpoints"] = args.endpoints
    return config.load(args.config, overrides)


class Display:
    """Live progress on a terminal; a plain line every few seconds elsewhere (logs, CI)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal else None
        self._last_line = 0.0

    def event(self, message: str) -> None:
        self.console.print(f"[dim]·[/dim] {message}")

    def progress(self, p: Progress) -> None:
        s = p.stats
        failing = s.get("reverted", 0) + s.get("rejected", 0) + s.get("dropped", 0) + s.get("unsent", 0)
        line = (
            f"epoch {p.epoch + 1} {p.phase}: planned {p.planned}  scheduled {int(s.get('scheduled', 0))}  sent {int(s.get('sent', 0))}  "
            f"committed {int(s.get('committed', 0))}  failing {int(failing)}  in flight {int(s.get('inflight', 0))}  "
            f"phase left {p.phase_eta_s:.0f}s"
        )
        if p.lagging:
            line += f"  [bold red]GENERATOR LAGGING {s['max_lag_s']:.2f}s behind schedule[/bold red]"
        if p.slow_answers:
            line += f"  [yellow]node answers in {s['max_answer_s']:.2f}s > pace {p.interval_s:g}s[/yellow]"
        if self.live is not None:
            if not self.live.is_started:
                self.live.start()
            self.live.update(line)
        elif p.elapsed_s - self._last_line >= 5 or p.lagging:
            self._last_line = p.elapsed_s
            self.console.print(line)

    def stop(self) -> None:
        if self.live is not None and self.live.is_started:
            self.live.stop()


def run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args)
    if args.dry_run:
        _, lines = preview(experiment)
        print("\n".join(lines))
        return 0
    console = Console(stderr=args.json)
    display = Display(console)
    runner = Run(
        experiment,
        args.out,
        ray_address=args.ray_address,
        on_progress=display.progress,
        on_event=display.event,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_bind,
    )
    started = time.monotonic()
    try:
        result = runner.execute()
    finally:
        display.stop()
    console.print(summary_table(result.summary))
    # soft_wrap: a path is never broken across lines, whatever the width (a CI log is 80 columns)
    console.print(f"transactions: {result.run_dir / 'transactions.parquet'}", soft_wrap=True)
    console.print(f"done in {time.monotonic() - started:.0f} s; next: loadgen report {result.run_dir}", soft_wrap=True)
    if result.summary["schedule_lag_p99_s"] and result.summary["schedule_lag_p99_s"] > 0.1:
        console.print(
            f"[bold red]warning: the generator fell behind its schedule (lag p99 {result.summary['schedule_lag_p99_s']:.3f} s)[/bold red]"
        )
    if args.json:
        json.dump(result.summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return result.exit_code

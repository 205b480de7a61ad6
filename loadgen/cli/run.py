"""`loadgen run CONFIG`: one experiment on the chain, live progress, a run folder, an exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from loadgen.cli import types
from loadgen.cli.display import Display
from loadgen.cli.report import summary_table
from loadgen.config import schema as config
from loadgen.engine.metrics import DEFAULT_PORT
from loadgen.engine.preview import preview
from loadgen.engine.run import Run

EXAMPLES = r"""examples:
  loadgen run configs/quickstart.yaml
  loadgen run configs/quickstart.yaml --set workload.pace_s=0.25 \
      --set workload.redundancy=8
  loadgen run EXPERIMENT.yaml \
      --endpoints http://10.0.0.11:8545,http://10.0.0.12:8545
  loadgen run EXPERIMENT.yaml --json > summary.json
  loadgen run EXPERIMENT.yaml --dry-run
  loadgen run EXPERIMENT.yaml --ray-address auto   # on a Ray cluster machine

exit status: 0 PASS (the commit ratio reached the threshold), 1 FAIL,
4 INVALID (the run did not offer its planned load: no verdict on the chain),
2 bad input, 3 an unexpected error (--debug shows where),
130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP
"""


def add_experiment_options(p: argparse.ArgumentParser) -> None:
    """What `run`, `search` and `sweep` share: the experiment, where it runs, its metrics."""
    p.add_argument("config", help="experiment YAML, e.g. configs/quickstart.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, read as YAML, e.g. workload.pace_s=0.25; repeat for several (default: none)",
    )
    p.add_argument(
        "--endpoints",
        type=types.endpoint_list,
        metavar="URL,URL,…",
        help="comma-separated RPC URLs, instead of chain.endpoints (default: the config's; none there: the embedded devnet)",
    )
    p.add_argument(
        "--watch-endpoints",
        type=types.endpoint_list,
        metavar="URL,URL,…",
        help="nodes the block watchers read from instead of the sending ones, e.g. `loadgen devnet --observers 1`'s "
        "(default: chain.watch_endpoints; none: the endpoints)",
    )
    p.add_argument("--ray-address", metavar="HOST:PORT", help="Ray cluster to join, or auto (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument(
        "--metrics-port", type=types.port, default=DEFAULT_PORT, metavar="PORT", help="port of the Prometheus endpoint; 0 picks a free one"
    )
    p.add_argument("--metrics-bind", default="0.0.0.0", metavar="ADDRESS", help="address the Prometheus endpoint listens on")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="run an experiment file", description=__doc__, epilog=EXAMPLES)
    add_experiment_options(p)
    p.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR", help="folder the run folder goes in")
    p.add_argument("--json", action="store_true", help="print summary.json on stdout (the display goes to stderr)")
    p.add_argument("--dry-run", action="store_true", help="check the experiment and print its plan; start nothing")


def load_experiment(args: argparse.Namespace) -> config.Experiment:
    overrides = config.parse_overrides(args.overrides)
    if args.endpoints is not None:
        overrides["chain.endpoints"] = args.endpoints
    if args.watch_endpoints is not None:
        overrides["chain.watch_endpoints"] = args.watch_endpoints
    return config.load(args.config, overrides)


def run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args)
    if args.dry_run:
        _, lines = preview(experiment, cluster=bool(args.ray_address or os.environ.get("RAY_ADDRESS")))
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
    try:
        result = runner.execute()
    finally:
        display.stop()
    console.print(summary_table(result.summary))
    # soft_wrap: a path is never broken across lines, whatever the width (a CI log is 80 columns)
    console.print(f"transactions: {result.run_dir / 'transactions.parquet'}", soft_wrap=True, highlight=False)
    console.print(f"done in {display.elapsed_s:.0f} s; next: loadgen report {result.run_dir}", soft_wrap=True, highlight=False)
    lag = result.summary["schedule_lag_p99_s"]
    if lag and lag > 0.1:
        console.print(f"[bold red]warning: the generator fell behind its schedule (lag p99 {lag:.3f} s)[/bold red]", soft_wrap=True)
    if args.json:
        json.dump(result.summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return result.exit_code

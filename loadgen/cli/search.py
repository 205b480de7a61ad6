"""`loadgen search CONFIG`: the smallest pace (or other parameter) at which the workload still
commits at least the threshold, by bisection over fresh trials."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from loadgen.cli import types
from loadgen.cli.run import load_experiment
from loadgen.metrics import DEFAULT_PORT
from loadgen.search import Search


def add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", help="the parameter to minimise (default: the workload's own, e.g. workload.pace_s for fl-round)")
    p.add_argument("--lo", type=float, default=0.01, help="lower bracket, expected to fail (default 0.01)")
    p.add_argument("--hi", type=float, default=2.0, help="upper bracket, must pass (default 2)")
    p.add_argument("--threshold", type=float, help="commit ratio to reach (default: run.threshold of the config)")
    p.add_argument("--tolerance", type=float, default=0.05, help="stop when (hi − lo)/hi ≤ this (default 0.05)")
    p.add_argument("--repeats", type=int, default=1, help="trials per probe; ≥ 2 judges by a 95%% confidence bound (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--endpoints", type=types.endpoint_list, help="comma-separated RPC URLs (overrides chain.endpoints)")
    p.add_argument("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--metrics-port", type=types.port, default=DEFAULT_PORT, help=f"Prometheus port for the trials (default {DEFAULT_PORT})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="binary-search the minimum pace", description=__doc__)
    p.add_argument("config", help="experiment YAML")
    p.add_argument("--out", type=Path, help="search folder; an existing one is resumed (default searches/<time>-<name>)")
    add_search_options(p)


def run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args)
    console = Console(stderr=args.json)
    out = args.out or Path("searches") / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{experiment.name}"
    search = Search(
        experiment, out, param=args.param, lo=args.lo, hi=args.hi, threshold=args.threshold, tolerance=args.tolerance,
        repeats=args.repeats, on_event=lambda m: console.print(f"[dim]·[/dim] {m}"), ray_address=args.ray_address,
        run_options={"metrics_port": args.metrics_port},
    )  # fmt: skip
    state = search.execute()
    if state.min_value is not None:
        lo, hi = state.bracket
        console.print(f"[bold]minimum {state.param} = {state.min_value:g}[/bold] ({state.status}; bracket {lo:g} … {hi:g})")
    for note in state.notes:
        console.print(f"note: {note}")
    console.print(f"search: {out / 'search.json'}, plot: {out / 'search.png'}")
    if args.json:
        json.dump(state.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0 if state.min_value is not None else 1

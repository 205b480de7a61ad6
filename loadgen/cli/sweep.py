"""`loadgen sweep CONFIG --vary workload.redundancy=1,2,4,8,16`: a search per value and the
study's figure from the results (Fig. 2 for redundancy, Fig. 3 for model length, Fig. 1 for an
array-copy sweep of array sizes)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from loadgen.cli.run import load_experiment
from loadgen.cli.search import add_search_options
from loadgen.study.sweep import Sweep, parse_vary

EXAMPLES = r"""examples:
  loadgen sweep configs/paper/quick/fig2-redundancy.yaml \
      --vary workload.redundancy=1,2,4
  loadgen sweep configs/paper/fig2-redundancy.yaml \
      --vary workload.redundancy=1,2,4,8,16 \
      --endpoints http://10.0.0.11:8545,http://10.0.0.12:8545
  loadgen sweep configs/paper/quick/fig1-transaction-size.yaml \
      --vary workload.array_size=100,500,1000 --repeats 2
  loadgen sweep configs/paper/quick/fig2-redundancy.yaml \
      --vary workload.redundancy=1,2,4 --out sweeps/s1   # again: resumes it
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="a search per value of a parameter, and the study's figures", description=__doc__, epilog=EXAMPLES)
    p.add_argument("--vary", required=True, metavar="workload.KEY=V1,V2,…", help="the parameter and its values (required)")
    p.add_argument("--out", type=Path, metavar="DIR", help="sweep folder; an existing one is resumed (default: sweeps/<time>-<name>)")
    add_search_options(p)


def run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args)
    param, values = parse_vary(args.vary)
    console = Console(stderr=args.json)
    out = args.out or Path("sweeps") / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{experiment.name}"
    search_options = {"param": args.param, "lo": args.lo, "hi": args.hi, "threshold": args.threshold,
                      "tolerance": args.tolerance, "repeats": args.repeats}  # fmt: skip
    run_options = {"metrics_port": args.metrics_port, "metrics_addr": args.metrics_bind}
    sweep = Sweep(experiment, out, param, values, search_options, run_options,
                  on_event=lambda m: console.print(f"[dim]·[/dim] {m}", soft_wrap=True), ray_address=args.ray_address)  # fmt: skip
    state = sweep.execute()
    for s in state.get("searches", []):
        pace = "–" if s["min_pace_s"] is None else f"{s['min_pace_s']:g} s"
        console.print(f"{param}={s['value']}: minimum pace {pace} ({s['status']})", soft_wrap=True)
    console.print(f"sweep: {out / 'sweep.json'}; figures: {', '.join(state['figures'])}", soft_wrap=True)
    if args.json:
        json.dump(state, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0

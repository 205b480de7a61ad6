"""`loadgen search CONFIG`: the smallest pace (or other parameter) at which the workload still
commits at least the threshold, by bisection over fresh trials."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from loadgen.cli.display import PLAIN_EVERY_S, clock, share
from loadgen.cli.run import add_experiment_options, load_experiment
from loadgen.study.answer import answer_of
from loadgen.study.search import Search, SearchProgress

EXAMPLES = r"""examples:
  loadgen search configs/quickstart.yaml
  loadgen search configs/quickstart.yaml --lo 0.05 --hi 1 --repeats 3 \
      --out searches/quick
  loadgen search configs/quickstart.yaml --out searches/quick   # resumes it
  loadgen search configs/paper/fig2-redundancy.yaml \
      --set workload.redundancy=8 \
      --endpoints http://10.0.0.11:8545,http://10.0.0.12:8545

exit status: 0 a minimum was found, 1 none was (--hi failed), 2 bad input,
130 interrupted (the same command resumes)
"""


def add_search_options(p: argparse.ArgumentParser) -> None:
    add_experiment_options(p)
    p.add_argument(
        "--param", metavar="KEY", help="the parameter to minimise (default: the workload's own, e.g. workload.pace_s for fl-round)"
    )
    p.add_argument("--lo", type=float, default=0.01, help="lower bracket, expected to fail")
    p.add_argument("--hi", type=float, default=2.0, help="upper bracket, must pass")
    p.add_argument("--threshold", type=float, help="commit ratio to reach (default: run.threshold of the config)")
    p.add_argument("--tolerance", type=float, default=0.05, help="stop when (hi − lo)/hi ≤ this")
    p.add_argument("--repeats", type=int, default=1, help="trials per probe; ≥ 2 judges by a 95%% confidence bound")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="binary-search the minimum pace", description=__doc__, epilog=EXAMPLES)
    p.add_argument("--out", type=Path, metavar="DIR", help="search folder; an existing one is resumed (default: searches/<time>-<name>)")
    add_search_options(p)


class SearchLines:
    """A line when a trial starts and every few seconds while it runs: the clock, the trial, the
    bracket and what is left."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last = (-1, -PLAIN_EVERY_S)

    def __call__(self, s: SearchProgress) -> None:
        trial, printed = self._last
        if s.trial == trial and s.elapsed_s - printed < PLAIN_EVERY_S:
            return
        self._last = (s.trial, s.elapsed_s)
        eta = f"ETA ~{clock(s.eta_s)}" if s.eta_s is not None else "ETA after the first trial"
        doing = "starting"
        if s.run is not None:
            doing = f"{s.run.phase} {share(s.run)}, committed {s.run.stats.committed:,}"
        lo, hi = s.bracket
        self.console.print(
            f"[{clock(s.elapsed_s)}] trial {s.trial} {s.param}={s.value:g}: {doing} | bracket {lo:g} … {hi:g}, "
            f"≤ {s.probes_left} probe(s) left, {eta}",
            highlight=False,
            soft_wrap=True,
        )


def resume_command(argv: list[str], out: Path) -> str:
    """The command that resumes this search: the same, with its folder."""
    args = list(argv)
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    return shlex.join(["loadgen", *args])


def run(args: argparse.Namespace) -> int:
    experiment = load_experiment(args)
    console = Console(stderr=args.json)
    out = args.out or Path("searches") / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{experiment.name}"
    search = Search(
        experiment, out, param=args.param, lo=args.lo, hi=args.hi, threshold=args.threshold, tolerance=args.tolerance,
        repeats=args.repeats, on_event=lambda m: console.print(f"[dim]·[/dim] {m}", soft_wrap=True), on_progress=SearchLines(console),
        ray_address=args.ray_address, run_options={"metrics_port": args.metrics_port, "metrics_addr": args.metrics_bind},
    )  # fmt: skip
    try:
        state = search.execute()
    except KeyboardInterrupt:
        lo, hi = search.state.bracket
        console.print(f"search interrupted after {len(search.state.trials)} trial(s); bracket so far {lo:g} … {hi:g}", soft_wrap=True)
        console.print(f"resume with: {resume_command(sys.argv[1:], out)}", soft_wrap=True, highlight=False)
        raise
    for line in answer_of(state).lines():
        console.print(line, highlight=False, soft_wrap=True)
    for note in state.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"search: {out / 'search.json'}, plot: {out / 'search.png'}", soft_wrap=True)
    if args.json:
        json.dump(state.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0 if state.min_value is not None else 1

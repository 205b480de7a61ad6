"""The dead time of a search or sweep: how long the chain sits idle between two trials.

    .venv/bin/python benchmarks/trials.py                 # the quick Fig. 2 sweep of EXPERIMENTS.md
    .venv/bin/python benchmarks/trials.py --values 8      # one search (redundancy 8)

Runs the sweep as `loadgen sweep` does, then reads every trial's rows: a trial's *gap* is from
the last moment anything of the previous trial was final (its last inclusion or give-up, which
is when its drain ended) to the first transaction the next one sent; *set-up* is from the
trial's start to its first send. Prints the sweep's wall time and the gaps' distribution, apart
for trials whose round the trial before opened (in the block that ended its own) and the rest.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.common.jsonfile import read_json
from loadgen.config import schema as config
from loadgen.study.sweep import Sweep


@dataclass(frozen=True)
class TrialTimes:
    run_id: str
    started: float
    first_send: float
    last_final: float  # the end of its drain
    opened_ahead: bool  # its round was opened by the trial before it
    stopped_early: bool


def trial_times(folder: Path) -> list[TrialTimes]:
    """Every trial under ``folder``, in the order they ran."""
    out = []
    for manifest in sorted(folder.rglob("trials/*/manifest.json")):
        run_dir = manifest.parent
        table = pq.read_table(run_dir / "transactions.parquet", columns=["t_sent", "t_included", "t_scheduled", "status"])
        summary = read_json(run_dir / "summary.json")
        started = datetime.fromisoformat(read_json(manifest)["started"]).timestamp()
        first = pc.min(table.column("t_sent")).as_py()
        last = max(v for v in (pc.max(table.column("t_included")).as_py(), pc.max(table.column("t_sent")).as_py()) if v is not None)
        if pc.any(pc.equal(table.column("status"), "dropped")).as_py():  # final when the commit timeout ran out: the drain's end
            last = max(last, pc.max(table.column("t_sent")).as_py() + read_json(manifest)["config"]["run"]["commit_timeout_s"])
        ahead = bool(summary.get("rounds_opened_ahead"))
        out.append(TrialTimes(run_dir.name, started, first, last, ahead, bool(summary.get("stopped_early"))))
    return sorted(out, key=lambda t: t.started)


def _spread(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    return f"{label} ({len(values)}): median {np.median(values):.2f} s, p90 {np.percentile(values, 90):.2f} s, max {max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/paper/quick/fig2-redundancy.yaml")
    parser.add_argument("--values", default="1,2,4,8", help="redundancies to sweep")
    parser.add_argument("--lo", type=float, default=0.02)
    parser.add_argument("--hi", type=float, default=0.6)
    parser.add_argument("--tolerance", type=float, default=0.2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    experiment = config.load(args.config)
    values: list[float | int] = [int(v) for v in args.values.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        options = {"lo": args.lo, "hi": args.hi, "tolerance": args.tolerance, "repeats": 1, "param": None, "threshold": None}
        t0 = time.monotonic()
        Sweep(experiment, out, "workload.redundancy", values, options, {"metrics_port": 0}).execute()
        wall = time.monotonic() - t0
        times = trial_times(out)
    gaps = [(nxt.first_send - prev.last_final, nxt.opened_ahead) for prev, nxt in itertools.pairwise(times)]
    setups = [t.first_send - t.started for t in times]
    print(f"sweep {args.config} redundancy={args.values}: {len(times)} trials in {wall:.0f} s")
    print(f"set-up, start of a trial to its first send: median {np.median(setups):.2f} s, max {max(setups):.2f} s")
    print(_spread("gap, previous trial final to the next one's first send", [g for g, _ in gaps]))
    print(_spread("  its round opened ahead by the trial before", [g for g, ahead in gaps if ahead]))
    print(_spread("  opened at its start (the trial before stopped early, or a new sweep point)", [g for g, ahead in gaps if not ahead]))


if __name__ == "__main__":
    main()

"""loadgen's marginal CPU per 1,000-value chunk transaction and its schedule lag, measured from
outside: `loadgen run … --endpoints …` processes against one Anvil on the same cores, the
machine's busy time over each run (/proc/stat) minus Anvil's (issue 25's method).

    .venv/bin/python benchmarks/marginal.py [--rates 400,800] [--hosting ray,process] [--short 4] [--long 16] [--repeats 3]

Each point is runs of the study's round (40 workers, chunks of 1,000 values, one chunk per
worker every 40/rate s), sending ``--short`` seconds and ``--long``, ``--repeats`` times each,
alternating: the marginal CPU is the difference of the two lengths' median CPU over their
difference in transactions, so what a run costs whatever its length (Ray or Python starting,
the deploy, the drain, the shutdown) cancels out. Two figures: the machine's busy time minus
Anvil's (every process, Ray's too), and the `loadgen run` process's own (its rusage; all of
loadgen in process hosting, steadier on a machine with other work). The lag p99 is the long
runs' median. ``--hosting`` is passed as run.hosting (auto chooses by the rate;
``default`` leaves it out, for a version of loadgen before it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import median

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.small_run import one_run
from loadgen.config import schema as config
from loadgen.engine.session import embedded_network

WORKERS = 40
POOLS = 10


def round_config(folder: Path, rate: float, seconds: float, hosting: str, key_offset: int) -> tuple[Path, int]:
    """The round at ``rate`` chunk transactions a second for about ``seconds``: its file, and
    the transactions it plans."""
    chunks = max(round(rate * seconds / WORKERS), 2)
    run = {"commit_timeout_s": 60, "lead_time_s": 1, "key_offset": key_offset} | ({} if hosting == "default" else {"hosting": hosting})
    doc = {
        "name": f"marginal-{rate:g}-{seconds:g}",
        "workload": {
            "kind": "fl-round", "chunk_size": 1_000, "model_length": chunks * 1_000, "redundancy": WORKERS // POOLS,
            "pools": POOLS, "pace_s": WORKERS / rate,
        },
        "run": run,
    }  # fmt: skip
    path = folder / f"{doc['name']}-{hosting}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, WORKERS * (1 + chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="400,800", help="chunk transactions a second, comma-separated")
    parser.add_argument("--hosting", default="ray,process", help="run.hosting values to compare, comma-separated")
    parser.add_argument("--short", type=float, default=4.0, help="seconds of sending of the shorter run")
    parser.add_argument("--long", type=float, default=16.0, help="seconds of sending of the longer run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each length; their medians are compared")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, embedded_network(config.DevnetConfig(client="anvil")) as net:
        print(net.describe())
        runs = 0
        for rate in (float(r) for r in args.rates.split(",")):
            for hosting in args.hosting.split(","):
                measured: dict[float, list[tuple[float, float, int, float]]] = {args.short: [], args.long: []}
                for seconds in [args.short, args.long] * args.repeats:
                    runs += 1
                    path, planned = round_config(Path(tmp), rate, seconds, hosting, key_offset=10_000 * runs)
                    r = one_run(path, net.urls, Path(tmp) / f"runs{runs}", net.pids, [], processes=False)
                    (run_dir,) = (Path(tmp) / f"runs{runs}").iterdir()
                    summary = json.loads((run_dir / "summary.json").read_text())
                    where = json.loads((run_dir / "manifest.json").read_text()).get("hosting", "ray")
                    lag_ms = summary["schedule_lag_p99_s"] * 1000
                    measured[seconds].append((r["cpu"], r["process_cpu"], r["rows"], lag_ms))
                    print(
                        f"  {rate:,.0f} chunk tx/s, {seconds:g} s, run.hosting {hosting} ({where}): "
                        f"{r['committed']:,} of {planned:,} committed, loadgen {r['cpu']:.2f} CPU-s "
                        f"(its process {r['process_cpu']:.2f}), wall {r['wall']:.1f} s, lag p99 {lag_ms:.1f} ms"
                    )
                short, long = measured[args.short], measured[args.long]
                n_s, n_l = short[0][2], long[0][2]
                figures = []
                for i, name in ((0, "machine"), (1, "process")):
                    cpu_s, cpu_l = median(m[i] for m in short), median(m[i] for m in long)
                    per = (cpu_l - cpu_s) / (n_l - n_s)
                    figures.append(f"{name}: marginal {per * 1000:.3f} ms per transaction, fixed {cpu_s - per * n_s:.2f} CPU-s")
                print(
                    f"{rate:,.0f} chunk tx/s, run.hosting {hosting}, medians of {args.repeats}: {'; '.join(figures)}; "
                    f"lag p99 (long runs) {median(m[3] for m in long):.1f} ms"
                )


if __name__ == "__main__":
    main()

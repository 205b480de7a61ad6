"""Soak: a long run at about half the embedded devnet's capacity, watching for leaks and drift.

    .venv/bin/python benchmarks/soak.py                      # 30 minutes of transfers at 500 tx/s
    .venv/bin/python benchmarks/soak.py --minutes 3 --rate 200

Every 10 s it samples the resident memory (RSS) and CPU of the driver (this process) and of every
sender and watcher actor, the transactions in flight and the senders' map of recent inclusions.
At the end: RSS growth per hour after the warm-up (the first 5 minutes, or a sixth of a shorter
run) by a least-squares fit, and the schedule lag's p99 over the first vs the last 5 minutes.
Target: flat memory (below 5 MB/h per process) and no lag drift. The embedded devnet (Anvil)
commits about 1,200 small transactions a second on 2 cores shared with loadgen (BENCHMARKS.md):
500 tx/s is about half of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow.parquet as pq
import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.e2e import cpu_seconds, memory_mb
from loadgen.config import schema as config
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run

SAMPLE_S = 10.0


@dataclass
class Samples:
    t: list[float] = field(default_factory=list)
    rss: dict[str, list[float]] = field(default_factory=dict)  # process → MB per sample
    cpu: dict[str, list[float]] = field(default_factory=dict)  # process → CPU seconds so far
    inflight: list[float] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)
    max_lag: list[float] = field(default_factory=list)


def growth_mb_per_hour(t: np.ndarray, mb: np.ndarray) -> float:
    return float(np.polyfit(t, mb, 1)[0] * 3600) if t.size >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=500.0, help="transactions a second")
    parser.add_argument("--workers", type=int, default=50)
    args = parser.parse_args()
    seconds = args.minutes * 60
    experiment = config.from_dict(
        {
            "name": "soak",
            "workload": {"kind": "transfer", "rate_tps": args.rate, "duration_s": seconds, "workers": args.workers},
            "run": {"commit_timeout_s": 60, "lead_time_s": 2},
        }
    )
    ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR)
    samples = Samples()
    pids: dict[str, int] = {"driver": os.getpid()}
    holder: dict[str, Run] = {}
    started = time.time()
    next_sample = [0.0]

    def on_progress(p: Progress) -> None:
        fleet = holder["run"].fleet
        assert fleet is not None, "progress comes while a phase runs"
        if len(pids) == 1:
            for kind, handles in (("sender", fleet.actors), ("watcher", list(fleet.watchers.values()))):
                for i, handle in enumerate(handles):
                    pids[f"{kind} {i}"] = cast(int, ray.get(handle.__ray_call__.remote(lambda self: os.getpid())))
        now = time.time()
        if now < next_sample[0]:
            return
        next_sample[0] = now + SAMPLE_S
        samples.t.append(now - started)
        for name, pid in pids.items():
            samples.rss.setdefault(name, []).append(memory_mb(pid))
            samples.cpu.setdefault(name, []).append(cpu_seconds(pid))
        samples.inflight.append(p.stats.inflight)
        samples.recent.append(p.stats.recent)
        samples.max_lag.append(p.stats.max_lag_s)
        print(
            f"{now - started:7.0f} s  rss {' '.join(f'{k}={v[-1]:.0f}' for k, v in samples.rss.items())} MB  "
            f"in flight {samples.inflight[-1]:.0f}  recent {samples.recent[-1]:.0f}",
            flush=True,
        )

    run = Run(experiment, Path(tempfile.mkdtemp()), on_progress=on_progress, metrics_port=0)
    holder["run"] = run
    result = run.execute()
    ray.shutdown()
    report(samples, result.run_dir, seconds, result.summary)


def report(samples: Samples, run_dir: Path, seconds: float, summary: dict) -> None:
    t = np.array(samples.t)
    warm = min(300.0, seconds / 6)
    after = t >= warm
    print(f"\n{summary['scheduled']:,} transactions, {summary['committed']:,} committed ({summary['commit_ratio']:.2%})")
    for name, mb in samples.rss.items():
        series = np.array(mb)
        cpu = np.array(samples.cpu[name])
        busy = (cpu[-1] - cpu[0]) / (t[-1] - t[0]) if t.size >= 2 else float("nan")
        print(
            f"{name:>10}: RSS {series[after][0] if after.any() else series[0]:.0f} → {series[-1]:.0f} MB, "
            f"growth after warm-up {growth_mb_per_hour(t[after], series[after]):+.1f} MB/h, CPU {busy:.0%} of a core"
        )
    print(f"in flight: max {max(samples.inflight):.0f}; recent inclusions kept: max {max(samples.recent):.0f}")
    table = pq.read_table(run_dir / "transactions.parquet", columns=["t_scheduled", "t_sent"])
    scheduled = table.column("t_scheduled").to_numpy()
    sent = table.column("t_sent").to_numpy(zero_copy_only=False).astype(float)
    lag = sent - scheduled
    window = min(300.0, seconds / 3)
    first = (scheduled < scheduled.min() + window) & ~np.isnan(lag)
    last = (scheduled > scheduled.max() - window) & ~np.isnan(lag)
    print(
        f"schedule lag p99: first {window / 60:g} min {np.percentile(lag[first], 99) * 1e3:.2f} ms, "
        f"last {window / 60:g} min {np.percentile(lag[last], 99) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()

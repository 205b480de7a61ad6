"""End to end on the embedded devnet: CPU per transaction, committed rate, start-up, memory.

    .venv/bin/python benchmarks/e2e.py cpu        # CPU time of loadgen's processes per transaction
    .venv/bin/python benchmarks/e2e.py rate       # highest committed rate, 1,000-value chunks
    .venv/bin/python benchmarks/e2e.py memory     # driver peak memory for a 100,000-transaction run
    .venv/bin/python benchmarks/e2e.py startup    # `loadgen run` until the first transaction leaves

CPU is read from /proc (Linux): the driver (this process) and the sender and watcher actors'
processes are loadgen's; Ray's own daemons and Anvil are reported apart.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow.parquet as pq
import ray

from loadgen import config
from loadgen.run import Run

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread name (threads of one name summed): where an actor's time goes."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def descendants(root: int) -> dict[int, str]:
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                names[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                continue
    out, frontier = {}, [root]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in out:
                out[child] = names.get(child, "")
                frontier.append(child)
    return out


def experiment(**workload) -> config.Experiment:
    return config.from_dict(
        {
            "name": "bench",
            "workload": {"kind": "fl-round", "chunk_size": 1_000, "epochs": 1, **workload},
            "run": {"commit_timeout_s": 60, "lead_time_s": 1},
        }
    )


def run_measured(exp: config.Experiment) -> None:
    ray.init(include_dashboard=False, logging_level=logging.ERROR)
    samples: dict[int, float] = {}
    names: dict[int, str] = {}
    kinds: dict[int, str] = {}
    actor_pids: set[int] = set()
    threads: dict[int, dict[str, float]] = {}
    holder: dict[str, Run] = {}

    def on_progress(_p) -> None:
        fleet = holder["run"].fleet
        assert fleet is not None, "progress comes while a phase runs"
        if not actor_pids:
            for kind, handles in (("sender", fleet.actors), ("watcher", list(fleet.watchers.values()))):
                for handle in handles:
                    # (ray types an actor handle's methods as Never: the checker cannot know this is an int)
                    pid = cast(int, ray.get(handle.__ray_call__.remote(lambda self: os.getpid())))
                    actor_pids.add(pid)
                    kinds[pid] = kind
        for pid, name in descendants(os.getpid()).items():
            samples[pid] = cpu_seconds(pid)
            names[pid] = name
        for pid in actor_pids:
            threads[pid] = threads_cpu(pid)

    driver0 = time.process_time()
    run = Run(exp, Path(tempfile.mkdtemp()), on_progress=on_progress)
    holder["run"] = run
    result = run.execute()
    driver = time.process_time() - driver0
    ray.shutdown()
    s = result.summary
    actors = sum(samples.get(p, 0.0) for p in actor_pids)
    anvil = sum(v for p, v in samples.items() if "anvil" in names.get(p, ""))
    ray_daemons = sum(samples.values()) - actors - anvil
    n = s["scheduled"]
    print(f"{n:,} transactions, {s['committed']:,} committed ({s['commit_ratio']:.1%}), throughput {s['throughput_tps']:.0f} tx/s")
    print(f"loadgen CPU: driver {driver:.2f} s + actors {actors:.2f} s = {(driver + actors) / n * 1e3:.3f} ms per transaction")
    for kind in ("sender", "watcher"):
        print(f"  {kind} actors: {sum(samples.get(p, 0.0) for p in actor_pids if kinds[p] == kind):.2f} s")
        by_thread: dict[str, float] = {}
        for pid in (p for p in actor_pids if kinds[p] == kind):
            for name, cpu in threads.get(pid, {}).items():
                by_thread[name] = by_thread.get(name, 0.0) + cpu
        top = sorted(by_thread.items(), key=lambda kv: -kv[1])[:6]
        print("    by thread: " + ", ".join(f"{name} {cpu:.2f} s" for name, cpu in top))
    print(f"not loadgen: Ray daemons {ray_daemons:.2f} s ({ray_daemons / n * 1e3:.3f} ms/tx), Anvil {anvil:.2f} s")
    print(f"latency p50 {s['latency_p50_s']:.3f} s p99 {s['latency_p99_s']:.3f} s, schedule lag p99 {s['schedule_lag_p99_s'] * 1e3:.2f} ms")
    print(f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    table = pq.read_table(result.run_dir / "transactions.parquet", filters=[("status", "=", "committed")])
    included = np.sort(table.column("t_included").to_numpy())
    if included.size:
        # the best 5 s: committed transactions whose block was seen within any 5 s window
        best = max(np.searchsorted(included, t + 5.0) - i for i, t in enumerate(included)) / 5.0
        print(f"highest committed rate over 5 s: {best:.0f} tx/s")


def startup() -> None:
    out = Path(tempfile.mkdtemp())
    started = time.time()
    subprocess.run([sys.executable, "-m", "loadgen", "run", "configs/quickstart.yaml", "--out", str(out)], check=True, capture_output=True)
    (run_dir,) = out.iterdir()
    first = pq.read_table(run_dir / "transactions.parquet").column("t_sent").to_numpy(zero_copy_only=False)
    print(f"`loadgen run configs/quickstart.yaml`: first transaction sent {min(first) - started:.2f} s after the command started")


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if mode == "cpu":  # 20,000 chunk transactions at 200/s
        run_measured(experiment(model_length=100_000, redundancy=20, pools=10, pace_s=1.0))
    elif mode == "rate":
        rate = float(sys.argv[2]) if len(sys.argv) > 2 else 400
        workers = 200
        run_measured(experiment(model_length=60_000, redundancy=workers // 10, pools=10, pace_s=workers / rate))
    elif mode == "memory":  # 100,000 small transactions (10-value chunks) at 1,000/s
        run_measured(experiment(model_length=5_000, chunk_size=10, redundancy=20, pools=10, pace_s=0.2))
    elif mode == "startup":
        startup()
    else:
        sys.exit(f"unknown mode {mode}: cpu, rate, memory or startup")


if __name__ == "__main__":
    main()

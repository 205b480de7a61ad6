"""End to end on the embedded devnet: CPU per transaction, committed rate, start-up, memory.

    .venv/bin/python benchmarks/e2e.py cpu        # CPU time of loadgen's processes per transaction
    .venv/bin/python benchmarks/e2e.py rate       # highest committed rate, 1,000-value chunks
    .venv/bin/python benchmarks/e2e.py memory     # driver peak memory for a 100,000-transaction run
    .venv/bin/python benchmarks/e2e.py million    # 1,000,000 small transactions: wall time, peak RSS, CPU
    .venv/bin/python benchmarks/e2e.py startup    # `loadgen run` until the first transaction leaves
    .venv/bin/python benchmarks/e2e.py profile    # the cpu run, each sender actor's event loop under cProfile
    .venv/bin/python benchmarks/e2e.py ratio 400,800,1200  # loadgen against a bare pre-signed send loop, one devnet

CPU is read from /proc (Linux): the driver (this process) and the sender and watcher actors'
processes are loadgen's; Ray's own daemons and Anvil are reported apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp
import numpy as np
import pyarrow.parquet as pq
import ray

from actors.profiling import PROFILE_DIR_ENV
from loadgen.chains import contracts
from loadgen.chains.devnet import DEFAULT_CHAIN_ID as DEV_CHAIN_ID
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.chains.signer import Signer, send_raw_body
from loadgen.config import schema as config
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run
from loadgen.workloads.fl_round import model

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's memory from /proc: VmRSS now, VmHWM its peak; NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


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


def experiment(endpoints: list[str] | None = None, **workload) -> config.Experiment:
    return config.from_dict(
        {
            "name": "bench",
            "chain": {"endpoints": endpoints or []},
            "workload": {"kind": "fl-round", "chunk_size": 1_000, "epochs": 1, **workload},
            "run": {"commit_timeout_s": 60, "lead_time_s": 1},
        }
    )


@dataclass
class Measured:
    transactions: int
    committed: int
    cpu_ms_per_tx: float  # all of loadgen's CPU over all transactions, start-up included
    marginal_ms_per_tx: float  # the slope of loadgen's CPU against transactions sent, while sending
    fixed_cpu_s: float  # what is left: start-up, deploy, drain, shutdown
    lag_p99_s: float
    best_5s_tps: float


def run_measured(exp: config.Experiment, env: dict[str, str] | None = None, mnemonic: MnemonicSource | None = None) -> Measured:
    ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR, runtime_env={"env_vars": env or {}})
    curve: list[tuple[float, float]] = []  # (sent so far, loadgen CPU so far), one per progress
    samples: dict[int, float] = {}
    names: dict[int, str] = {}
    kinds: dict[int, str] = {}
    actor_pids: set[int] = set()
    threads: dict[int, dict[str, float]] = {}
    peaks: dict[int, float] = {}  # actor → peak RSS (MB)
    holder: dict[str, Run] = {}

    def on_progress(p: Progress) -> None:
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
            peaks[pid] = max(peaks.get(pid, 0.0), memory_mb(pid, "VmHWM"))
        curve.append((p.stats.sent, time.process_time() - driver0 + sum(samples.get(a, 0.0) for a in actor_pids)))

    driver0 = time.process_time()
    run = Run(exp, Path(tempfile.mkdtemp()), on_progress=on_progress, mnemonic=mnemonic, metrics_port=0)
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
    actor_peaks = ", ".join(f"{kinds[p]} {peaks[p]:.0f} MB" for p in sorted(peaks))
    print(f"peak RSS: driver {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; {actor_peaks}")
    table = pq.read_table(result.run_dir / "transactions.parquet", filters=[("status", "=", "committed")])
    included = np.sort(table.column("t_included").to_numpy())
    if included.size:
        # the best 5 s: committed transactions whose block was seen within any 5 s window
        best = float(max(np.searchsorted(included, t + 5.0) - i for i, t in enumerate(included)) / 5.0)
        print(f"highest committed rate over 5 s: {best:.0f} tx/s")
    else:
        best = 0.0
    # the marginal cost: CPU against transactions sent over the middle of the sending, where start-up and drain are not
    points = np.array(curve, dtype=float).reshape(-1, 2)
    middle = points[(points[:, 0] > 0.1 * n) & (points[:, 0] < 0.9 * n)]
    marginal = float(np.polynomial.polynomial.polyfit(middle[:, 0], middle[:, 1], 1)[1]) if len(middle) >= 3 else float("nan")
    total = driver + actors
    print(f"marginal loadgen CPU {marginal * 1e3:.3f} ms per transaction; fixed cost {total - marginal * n:.1f} CPU-s")
    return Measured(n, s["committed"], total / n * 1e3, marginal * 1e3, total - marginal * n, s["schedule_lag_p99_s"], best)


BARE_ACCOUNTS = 10
BARE_PER_ACCOUNT = 400
RATIO_WORKERS = 40


def bare_bodies(per_account: int, first_nonce: int) -> list[list[bytes]]:
    """Pre-signed 1,000-value chunk transactions (the reveal's calldata) from the devnet's own
    accounts past the ones loadgen's workers use, each account's in nonce order."""
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    chunk = model.random_model(1_000, 1)
    data = contracts.reveal_chunk_calldata(1, 0, chunk)
    out = []
    for a in range(BARE_ACCOUNTS):
        signer = Signer(bytes(derive_account(source, 1 + RATIO_WORKERS + a).key), DEV_CHAIN_ID)
        nonces = range(first_nonce, first_nonce + per_account)
        out.append([send_raw_body(signer.sign(nonce=i, gas_price=0, gas=800_000, to=bytes(20), data=data).raw) for i in nonces])
    return out


async def bare_loop(url: str, bodies: list[list[bytes]], concurrency: int) -> float:
    """Accepted sends a second: ``concurrency`` requests in the air, single requests, no schedule."""
    queue = [b for per_account in zip(*bodies, strict=True) for b in per_account]  # nonce 0 of every account, then 1, …
    accepted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(k: int) -> None:
            nonlocal accepted
            for body in queue[k::concurrency]:
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    accepted += "result" in json.loads(await r.read())

        started = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(concurrency)))
        return accepted / (time.perf_counter() - started)


def ratio(rates: list[float]) -> None:
    """loadgen's committed rate with the schedule kept against a bare pre-signed send loop's best,
    on one devnet, one after the other."""
    with Devnet(DevnetSettings(accounts=1 + RATIO_WORKERS + BARE_ACCOUNTS)) as node:
        best_bare = 0.0
        for r, concurrency in enumerate((8, 32, 128)):
            # each round's nonces start where the last round's ended
            rate = asyncio.run(bare_loop(node.url, bare_bodies(BARE_PER_ACCOUNT, r * BARE_PER_ACCOUNT), concurrency))
            print(f"bare pre-signed loop, {concurrency} in the air: {rate:,.0f} accepted sends/s")
            best_bare = max(best_bare, rate)
            time.sleep(3)  # the node mines what it took before loadgen's turn
        kept: list[float] = []
        for k, offered in enumerate(rates):
            print(f"\nloadgen at {offered:,.0f} chunk tx/s offered by {RATIO_WORKERS} workers:")
            chunks = max(int(offered * 12 / RATIO_WORKERS), 4)  # about 12 s of sending
            exp = experiment(
                [node.url], model_length=chunks * 1_000, redundancy=RATIO_WORKERS // 10, pools=10, pace_s=RATIO_WORKERS / offered
            )
            exp = exp.with_overrides({"run.key_offset": 10_000 * k})  # each run's workers start at nonce 0
            m = run_measured(exp, mnemonic=MnemonicSource("devnet", DEV_MNEMONIC))
            if m.lag_p99_s <= 0.02 and m.committed == m.transactions:
                kept.append(min(offered, m.best_5s_tps))
        best = max(kept, default=0.0)
        print(f"\nbare loop best {best_bare:,.0f} tx/s; loadgen committed with lag p99 ≤ 20 ms: {best:,.0f} tx/s")
        print(f"ratio {best / best_bare:.2f}")


def profile() -> None:
    """The cpu run with each sender actor's event loop under cProfile: where its time goes."""
    folder = Path(tempfile.mkdtemp())
    run_measured(experiment(model_length=100_000, redundancy=20, pools=10, pace_s=1.0), {PROFILE_DIR_ENV: str(folder)})
    stats = pstats.Stats(*[str(p) for p in sorted(folder.glob("*.prof"))])
    print(f"\nsender actors' event loops, profiled ({len(list(folder.glob('*.prof')))} phase profiles; cProfile inflates small calls):")
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


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
    elif mode == "million":  # 1,000,000 small transactions (10-value chunks) at 1,500/s from 200 workers
        started = time.monotonic()
        run_measured(experiment(model_length=50_000, chunk_size=10, redundancy=20, pools=10, pace_s=200 / 1_500))
        print(f"wall time {time.monotonic() - started:.0f} s")
    elif mode == "ratio":
        ratio([float(r) for r in (sys.argv[2] if len(sys.argv) > 2 else "400,800,1200").split(",")])
    elif mode == "profile":
        profile()
    elif mode == "startup":
        startup()
    else:
        sys.exit(f"unknown mode {mode}: cpu, rate, memory or startup")


if __name__ == "__main__":
    main()

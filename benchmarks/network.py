"""The multi-node network: how long geth takes to build, a network to start, and where its knee is.

    .venv/bin/python benchmarks/network.py build                 # clean build of the pinned geth (empty Go caches)
    .venv/bin/python benchmarks/network.py start [CONSENSUS...] [--nodes 4]  # start and stop networks, 3 times each
    .venv/bin/python benchmarks/network.py knee [--consensus clique] [--rates 20,40,60,80,100]

`knee` offers chunk transactions (1,000 values, 32 kB) at increasing rates to one 4-node network
(40 workers, about 15 s of reveal per rate, default txpool limits) and prints what committed.
qbft and raft need GoQuorum's geth in $LOADGEN_GOQUORUM.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from loadgen.chains import clients
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.common.paths import REPO_ROOT
from loadgen.config import schema as config
from loadgen.engine.run import Run

WORKERS = 40
REVEAL_S = 15.0


def build() -> None:
    """What `make setup` does on a clean machine: module download and compile, no cache."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"GOPATH": f"{tmp}/gopath", "GOMODCACHE": f"{tmp}/gopath/pkg/mod", "GOCACHE": f"{tmp}/cache"}
        env["GOFLAGS"] = "-mod=readonly"
        started = time.monotonic()
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-checklinkname=0", "-o", f"{tmp}/geth", "github.com/ethereum/go-ethereum/cmd/geth"],
            cwd=REPO_ROOT / "chains" / "geth",
            env=env,
            check=True,
        )
        took = time.monotonic() - started
        version = subprocess.run([f"{tmp}/geth", "version"], capture_output=True, text=True).stdout.split("\n")[1]
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)  # the module cache is read-only
    print(f"geth {clients.pinned_version()} ({version.strip()}): clean build {took:.0f} s")


def start(consensuses: list[str], nodes: int) -> None:
    for name in consensuses:
        times, stops = [], []
        for _ in range(3):
            net = GethNetwork(GethNetworkSettings(nodes=nodes, consensus=name, gas_price=1 if name == "clique" else 0))
            net.start()
            assert net.started_in_s is not None
            times.append(net.started_in_s)
            t = time.monotonic()
            net.stop()
            stops.append(time.monotonic() - t)
        print(f"{name}: {nodes} nodes ready (peered, producing) in {np.median(times):.2f} s (runs {', '.join(f'{x:.2f}' for x in times)}); "
              f"stopped in {np.median(stops):.2f} s")  # fmt: skip


def reveal_rate(table) -> tuple[float, float]:
    """Committed reveal transactions per second over the phase, and over its best 5 s."""
    reveal = table.filter(pc.and_(pc.equal(table.column("phase"), "reveal"), pc.equal(table.column("status"), "committed")))
    included = np.sort(np.array(reveal.column("t_included").to_pylist(), dtype=float))
    scheduled = np.array(table.filter(pc.equal(table.column("phase"), "reveal")).column("t_scheduled").to_pylist(), dtype=float)
    if included.size < 2:
        return 0.0, 0.0
    overall = included.size / (included[-1] - scheduled.min())
    ends = np.searchsorted(included, included + 5.0)
    return overall, float((ends - np.arange(included.size)).max() / 5.0)


def knee(consensus: str, rates: list[float]) -> None:
    os.environ.setdefault("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    gas_price = 1 if consensus == "clique" else 0
    block_gas = 100_000_000 if consensus == "clique" else 700_000_000
    net = GethNetwork(
        GethNetworkSettings(
            nodes=4, consensus=consensus, gas_price=gas_price, block_gas_limit=block_gas, block_time_s=1 if consensus != "raft" else 0.05
        )
    )
    ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR)
    print(f"{net.describe()}; {WORKERS} workers; chunks of 1,000 values; default txpool limits")
    print("offered tx/s | committed tx/s (phase) | best 5 s | commit ratio | latency p50 | latency p99 | lag p99")
    with net:
        for rate in rates:
            pace = WORKERS / rate
            chunks = max(int(REVEAL_S / pace), 2)
            exp = config.from_dict(
                {
                    "name": f"knee-{rate:g}",
                    "chain": {"endpoints": net.urls},
                    "workload": {"kind": "fl-round", "model_length": chunks * 1000, "redundancy": WORKERS // 2, "pools": 2, "pace_s": pace},
                    "run": {"commit_timeout_s": 30},
                }
            )
            out = Path(tempfile.mkdtemp())
            try:
                result = Run(exp, out, metrics_port=None).execute()
            except Exception as e:  # a coordinator step that never lands: the network fell over
                print(f"{rate:12g} | the network fell behind: {type(e).__name__}: {str(e)[:100]}", flush=True)
                break
            table = pq.read_table(result.run_dir / "transactions.parquet")
            overall, best = reveal_rate(table)
            s = result.summary
            print(
                f"{rate:12g} | {overall:22.1f} | {best:8.1f} | {s['commit_ratio']:12.1%} | "
                f"{s['latency_p50_s'] or 0:10.2f}s | {s['latency_p99_s'] or 0:10.2f}s | {s['schedule_lag_p99_s'] or 0:.3f}s",
                flush=True,
            )
            shutil.rmtree(out, ignore_errors=True)
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("build", "start", "knee"))
    parser.add_argument("consensuses", nargs="*", default=["clique"])
    parser.add_argument("--consensus", default="clique")
    parser.add_argument("--nodes", type=int, default=4, help="start: nodes of each network")
    parser.add_argument("--rates", default="20,40,60,80,100")
    args = parser.parse_args()
    if args.mode == "build":
        build()
    elif args.mode == "start":
        start(args.consensuses, args.nodes)
    else:
        knee(args.consensus, [float(r) for r in args.rates.split(",")])


if __name__ == "__main__":
    main()

"""A small run, the whole of what it costs: value transfers from 20 accounts at 60 tx/s for 30 s
(the case where the study's tool, Diablo, took 2.76 CPU-s in all on a 4-node GoQuorum QBFT
network), as a user starts it: `loadgen run … --endpoints …` with its own local Ray.

    .venv/bin/python benchmarks/small_run.py [--client geth|goquorum] [--runs 3] [--set KEY=VALUE …]

The network starts first and stays; each run is a `loadgen run` process. loadgen's CPU is the
machine's busy time over the run (/proc/stat) minus the nodes' (their processes' user + system
time): every process the run starts counts, Ray's included. Prints per run the CPU, the wall
time, the time to the first transaction sent and what committed; `--processes` also samples
every process each 0.2 s and prints each one's CPU by name (a process that lives less than a
sample is missed: the machine's figure is the one to trust).

To measure another checkout, run this from that checkout's directory with
``PYTHONPATH=<checkout>``: Ray puts the driver's working directory first on its workers' path,
so from anywhere else a run on Ray would host that directory's actors beside the checkout's driver.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.common.paths import REPO_ROOT
from loadgen.config import schema as config
from loadgen.engine.session import embedded_network

TICKS = os.sysconf("SC_CLK_TCK")


def busy_s() -> float:
    """The machine's busy CPU time since boot: every state but idle and iowait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def name_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0].split(".")[0]
    tool = Path(words[0]).name
    args = [w for w in words[1:] if w != "-u"]
    if tool.startswith("python") and args:
        return "python " + (args[1] if args[0] == "-m" and len(args) > 1 else Path(args[0]).name)
    return tool


def sample(skip: set[int], cpu: dict[int, float], names: dict[int, str]) -> None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in skip:
            pid = int(entry.name)
            cpu[pid] = cpu_of(pid) or cpu.get(pid, 0.0)
            if not names.get(pid, "").startswith("ray::"):  # a Ray worker names itself once it hosts an actor
                names[pid] = name_of(pid)


def one_run(config_file: Path, urls: list[str], out: Path, nodes: list[int], sets: list[str], processes: bool) -> dict:
    command = [str(REPO_ROOT / ".venv/bin/loadgen"), "run", str(config_file), "--endpoints", ",".join(urls), "--metrics-port", "0"]
    command += ["--out", str(out)] + [w for s in sets for w in ("--set", s)]
    before: dict[int, float] = {}
    names: dict[int, str] = {}
    skip = {os.getpid()} | set(nodes)
    if processes:
        sample(skip, before, names)
    busy0, nodes0, own0, t0 = busy_s(), sum(cpu_of(p) for p in nodes), time.process_time(), time.time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = os.environ | {"LOADGEN_MNEMONIC": DEV_MNEMONIC}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    after = dict(before)
    while proc.poll() is None:
        if processes:
            sample(skip, after, names)
        time.sleep(0.2)
    time.sleep(1.0)  # Ray's processes leave a moment after the driver
    took = time.time() - t0
    # the nodes' time and this script's own (its samples) are not loadgen's
    machine = busy_s() - busy0 - (sum(cpu_of(p) for p in nodes) - nodes0) - (time.process_time() - own0)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the `loadgen run` process and what it started and reaped itself (everything, in process
    # hosting; Ray's processes are not its children to reap)
    process = children.ru_utime + children.ru_stime - children0.ru_utime - children0.ru_stime
    if proc.returncode not in (0, 1):
        raise SystemExit(f"loadgen run exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    run_dir = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    rows = pq.read_table(run_dir / "transactions.parquet", columns=["t_sent", "status"]).to_pydict()
    by_name: dict[str, float] = defaultdict(float)
    for pid, total in after.items():
        by_name[names.get(pid, "?")] += total - before.get(pid, 0.0)
    return {
        "cpu": machine,
        "process_cpu": process,
        "wall": took,
        "first_sent": min(t for t in rows["t_sent"] if t is not None) - t0,
        "committed": sum(s == "committed" for s in rows["status"]),
        "rows": len(rows["status"]),
        "processes": {k: v for k, v in by_name.items() if v >= 0.05},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", default="geth", choices=("geth", "goquorum"))
    parser.add_argument("--consensus", default=None, help="clique (geth); qbft, ibft or raft (goquorum)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], dest="sets", help="passed to each `loadgen run`")
    parser.add_argument("--processes", action="store_true", help="print each process's CPU too")
    args = parser.parse_args()

    devnet = {"client": args.client} | ({"consensus": args.consensus} if args.consensus else {})
    workload = {"kind": "transfer", "workers": args.workers, "rate_tps": args.rate, "duration_s": args.duration}
    exp = config.from_dict({"name": "small", "chain": {"devnet": devnet}, "workload": workload})
    with tempfile.TemporaryDirectory() as tmp, embedded_network(exp.chain.devnet) as net:
        print(net.describe())
        config_file = Path(tmp) / "small.yaml"
        config_file.write_text(yaml.safe_dump({"name": "small-run", "workload": workload}))
        for i in range(args.runs):
            r = one_run(config_file, net.urls, Path(tmp) / f"runs{i}", net.pids, args.sets, args.processes)
            print(
                f"run {i + 1}: loadgen {r['cpu']:.2f} CPU-s (its process {r['process_cpu']:.2f}), wall {r['wall']:.1f} s, "
                f"first transaction sent after {r['first_sent']:.2f} s, {r['committed']:,} of {r['rows']:,} committed "
                f"({r['cpu'] / max(r['committed'], 1) * 1000:.2f} ms per committed transaction)"
            )
            for name, total in sorted(r["processes"].items(), key=lambda kv: -kv[1]):
                print(f"    {total:6.2f} CPU-s  {name}")


if __name__ == "__main__":
    main()

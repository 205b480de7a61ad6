"""The record against the chain at and past capacity: value transfers offered to a local
multi-node network, then the chain read block by block once every pool is empty.

    .venv/bin/python benchmarks/capacity_truth.py --rate 900 --duration 30
    .venv/bin/python benchmarks/capacity_truth.py --client goquorum --rate 900   # $LOADGEN_GOQUORUM

Prints loadgen's counts and latency beside the chain's (block timestamp − scheduled time), the
rows that disagree with the chain (on chain but not recorded committed, recorded committed but
not on chain, hashes with two rows), the watcher's largest lag, and the nodes' CPU seconds over
the run (their processes' user + system time, read from /proc).

    .venv/bin/python benchmarks/capacity_truth.py --observer minimal --rate 400

sends the same transfers (same accounts, pre-signed, paced) without loadgen, with an observer
that only polls blocks (no receipts, no pools, no look-ups: what Diablo does), on a network of
its own, and prints the nodes' CPU: the cost of observing is loadgen's figure minus this one.

    .venv/bin/python benchmarks/capacity_truth.py --observers 1 --rate 400

adds an observer node (`loadgen devnet --observers`) that the watchers read from: the nodes'
CPU is then the validators' alone, the observer's printed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import cast

import aiohttp
import pyarrow.parquet as pq
import ray

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.fees import resolve_fees
from loadgen.chains.funding import fund
from loadgen.chains.node import Node
from loadgen.chains.signer import Signer, sign_with
from loadgen.config import schema as config
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.engine.run import Run
from loadgen.engine.session import embedded_network
from loadgen.report.audit import audit, chain_hashes
from loadgen.report.head_clock import HeadClock


def cpu_s(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


async def paced_sends(urls: list[str], bodies: list[bytes], rate: float) -> None:
    """Each body at its slot (rate a second overall), worker i's through endpoint i mod n."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
        start = time.monotonic() + 0.2

        async def send(i: int, body: bytes) -> None:
            await asyncio.sleep(max(start + i / rate - time.monotonic(), 0))
            async with http.post(urls[i % len(urls)], data=body, headers={"Content-Type": "application/json"}) as answer:
                await answer.read()

        await asyncio.gather(*(send(i, b) for i, b in enumerate(bodies)))


def minimal_observer(urls: list[str], workers: int, rate: float, duration: float, timeout_s: float) -> tuple[int, int]:
    """Pre-signed transfers sent on schedule, then blocks polled (hashes only) until all are in
    or ``timeout_s`` passed: (included, sent)."""
    w3 = connect(urls[0])
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    coordinator, accounts = derive_account(source, 0), [derive_account(source, 1 + i) for i in range(workers)]
    node = Node(urls[0])
    fees = resolve_fees(node, "legacy", None, None, None)
    fund(node, coordinator, [a.address for a in accounts], 10**18, fees)
    chain_id, n = w3.eth.chain_id, int(rate * duration)
    signers = [Signer(bytes(a.key), chain_id) for a in accounts]
    nonces = [node.pending_nonce(a.address) for a in accounts]
    txs = []
    for i in range(n):
        w = i % workers
        to = bytes.fromhex(accounts[(w + 1) % workers].address[2:])
        txs.append(sign_with(signers[w], fees, nonce=nonces[w] + i // workers, gas=21_000, to=to, data=b"", value=1))
    first = w3.eth.block_number + 1
    asyncio.run(paced_sends(urls, [t.body for t in txs], rate))
    wanted, seen, block = {"0x" + t.tx_hash.hex() for t in txs}, 0, first
    deadline = time.monotonic() + timeout_s
    while seen < n and time.monotonic() < deadline:
        head = w3.eth.block_number
        while block <= head:
            seen += len(wanted.intersection("0x" + cast(bytes, h).hex() for h in w3.eth.get_block(block)["transactions"]))
            block += 1
        time.sleep(0.5)
    return seen, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", default="geth", choices=("geth", "goquorum"))
    parser.add_argument("--consensus", default=None, help="clique (geth); qbft or raft (goquorum)")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=900.0, help="transfers a second, offered")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--commit-timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None, help="keep the run folder under this directory")
    parser.add_argument("--observer", default="loadgen", choices=("loadgen", "minimal"))
    parser.add_argument("--observers", type=int, default=0, help="observer nodes beside the validators, which the watchers read from")
    args = parser.parse_args()

    os.environ.setdefault("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    devnet = {"client": args.client, "nodes": args.nodes, "observers": args.observers}
    devnet |= {"consensus": args.consensus} if args.consensus else {}
    exp = config.from_dict(
        {
            "name": f"capacity-{args.rate:g}",
            "chain": {"devnet": devnet},
            "workload": {
                "kind": "transfer",
                "workers": args.workers,
                "rate_tps": args.rate,
                "duration_s": args.duration,
            },
            "run": {"commit_timeout_s": args.commit_timeout},
        }
    )
    if args.observer == "minimal":
        with embedded_network(exp.chain.devnet) as net:
            print(net.describe())
            validators = net.pids[: args.nodes]
            cpu_before, started = cpu_s(validators), time.monotonic()
            included, sent = minimal_observer(net.urls, args.workers, args.rate, args.duration, args.duration + 2 * args.commit_timeout)
            node_cpu, took = cpu_s(validators) - cpu_before, time.monotonic() - started
        print(f"minimal observer: {included:,} of {sent:,} included; nodes' CPU {node_cpu:.1f} CPU-s over {took:.0f} s "
              f"({node_cpu / max(included, 1) * 1000:.2f} ms per included transaction)")  # fmt: skip
        return
    ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR)
    with embedded_network(exp.chain.devnet) as net, tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(net.describe())
        w3 = connect(net.urls[0])
        first = w3.eth.block_number + 1
        validators, observers = net.pids[: args.nodes], net.pids[args.nodes :]
        cpu_before, watch_before, started = cpu_s(validators), cpu_s(observers), time.monotonic()
        pointed = exp.with_overrides({"chain.endpoints": net.urls, "chain.watch_endpoints": net.observer_urls})
        with HeadClock((net.observer_urls or net.urls)[:1]) as clock:  # the node the (first) watcher reads
            result = Run(pointed, out, metrics_port=None).execute()
        node_cpu, took = cpu_s(validators) - cpu_before, time.monotonic() - started
        watch_cpu = cpu_s(observers) - watch_before
        table = pq.read_table(result.run_dir / "transactions.parquet")
        chain, largest = chain_hashes(w3, first, w3.eth.block_number)
        a = audit(table, chain, largest, clock.seen)
        s = result.summary
    ray.shutdown()
    print(f"run folder {result.run_dir}")

    def secs(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f} s"

    print(f"offered {args.rate:g} tx/s for {args.duration:g} s, {args.workers} workers, commit timeout {args.commit_timeout:g} s")
    print(f"{'':24} {'chain':>10} {'loadgen':>10}")
    print(f"{'scheduled':24} {'':>10} {s['scheduled']:>10,}")
    print(f"{'included / committed':24} {a.on_chain:>10,} {a.committed:>10,}")
    print(f"{'  of them late':24} {'':>10} {a.late:>10,}")
    print(f"{'dropped':24} {'':>10} {s['dropped']:>10,}")
    print(f"{'latency p50':24} {secs(a.chain_p50_s):>10} {secs(a.record_p50_s):>10}")
    print(f"{'  from the watched node':24} {secs(a.announced_p50_s):>10}")
    print(f"{'latency p99':24} {secs(a.chain_p99_s):>10} {secs(a.record_p99_s):>10}")
    print(f"largest block {a.largest_block:,} transactions; commit ratio (in time) {s['commit_ratio']:.1%}")
    print(f"disagreements: on chain but not committed {a.missed}, committed but not on chain {a.phantom}, hashes with two rows {a.twice}")
    reorgs = s.get("reorgs", [])
    print(f"watcher lag max {s.get('watcher_lag_max_blocks', 0)} blocks / {s.get('watcher_lag_max_s', 0.0):.1f} s; "
          f"reorganizations under the watcher {len(reorgs)} (deepest {max((r['depth'] for r in reorgs), default=0)})")  # fmt: skip
    print(f"nodes' CPU {node_cpu:.1f} CPU-s over {took:.0f} s ({node_cpu / max(a.on_chain, 1) * 1000:.2f} ms per included transaction)")
    if observers:
        print(f"observers' CPU {watch_cpu:.1f} CPU-s (not in the nodes' figure: the watchers read there)")
    print("AGREES" if a.agrees and a.on_chain == a.committed else "DISAGREES")


if __name__ == "__main__":
    main()

"""The sending path alone, against an endpoint that only answers with a hash.

    .venv/bin/python benchmarks/send_path.py [--seconds 5]

Prints, for 1,000-value chunk transactions (32 kB each):
- a bare asyncio/aiohttp loop posting pre-signed bytes as fast as it can (the practical ceiling);
- loadgen's Sender (the code inside a sender actor: schedule, sign-ahead, send, row keeping)
  offered more than it can send: its sustained rate;
- the Sender at 80% of that rate: schedule lag p50/p99.
Rates are per core: transactions per second of this process's CPU time (the endpoint runs in
its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from actors.rpc import RpcClient
from actors.sender import OPEN_CONNECTIONS, Sender, Worker
from loadgen.chains import contracts
from loadgen.chains.devnet import free_port
from loadgen.chains.fees import Fees
from loadgen.chains.signer import Signer, send_raw_body
from loadgen.engine.plan import WorkerSpec, constant_rate
from loadgen.engine.sending import Sending
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.workload import Reveal

CHUNK = 1_000


def start_endpoint() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_rpc.py")), str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, f"http://127.0.0.1:{port}"


def presigned(n: int) -> list[bytes]:
    signer = Signer(os.urandom(32), 1337)
    to = bytes(20)
    chunk = model.random_model(CHUNK, 1)
    calldata = [contracts.reveal_chunk_calldata(1, i, chunk) for i in range(n)]
    return [send_raw_body(signer.sign(nonce=i, gas_price=0, gas=800_000, to=to, data=data).raw) for i, data in enumerate(calldata)]


async def bare_loop(url: str, bodies: list[bytes], seconds: float, concurrency: int = 64) -> tuple[int, float, float]:
    sent = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(k: int) -> None:
            nonlocal sent
            i = k
            while time.perf_counter() < stop:
                async with session.post(url, data=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                sent += 1
                i += concurrency

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(concurrency)))
        return sent, time.process_time() - cpu0, time.perf_counter() - wall0


async def sender_run(url: str, workers: int, rate: float, seconds: float, presign_all: bool, mode: str = "open") -> dict:
    """The Sender as a sender actor runs it, offered ``rate`` for ``seconds``."""
    sender = Sender("bench", "local", 1337, Fees.legacy(0), Sending(mode))
    rpc = RpcClient(url, connections=OPEN_CONNECTIONS if mode == "open" else 64)
    sender.clients[url] = rpc
    sender.workers = [Worker(WorkerSpec(i, i + 1, 0, url, 0), Signer(os.urandom(32), 1337), rpc) for i in range(workers)]
    phase = constant_rate("reveal", workers, rate, max(seconds, workers / rate), gas_limit=800_000)
    items = max(phase.items)
    payload = Reveal(contract="0x" + "00" * 20, round_id=1, seed=0, model_length=CHUNK * items, chunk_size=CHUNK)
    if presign_all:
        sender.presigner.budget_bytes = 2 * 33_000 * items * workers + 1
    cpu0 = time.process_time()
    signed = sender.prepare_phase(phase, payload)
    sign_cpu = time.process_time() - cpu0
    t0 = time.time() + 0.2
    cpu0 = time.process_time()
    await sender.run_phase(phase, payload, t0, commit_timeout_s=0.0)
    cpu = time.process_time() - cpu0
    table = sender.collector.take()
    assert table is not None, "the phase sent"
    sent_at = table.column("t_sent").to_numpy()
    lag = sent_at - table.column("t_scheduled").to_numpy()
    await sender.close()
    return {
        "sent": sender.sent,
        "wall": float(np.nanmax(sent_at) - t0),
        "cpu": cpu,
        "lag": lag[~np.isnan(lag)],
        "sign_us": sign_cpu / signed * 1e6 if signed else float("nan"),
        "signed_ahead": signed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--modes", default="open,closed", help="send modes to measure, e.g. open or open,closed")
    parser.add_argument("--rate", type=float, default=2_000, help="a fixed offered rate to read CPU per transaction at")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    endpoint, url = start_endpoint()
    try:
        bodies = presigned(500)
        n, cpu, wall = asyncio.run(bare_loop(url, bodies, args.seconds))
        bare = n / cpu
        print(f"bare aiohttp loop, pre-signed:   {n / wall:8.0f} tx/s wall, {bare:8.0f} tx/s per core ({cpu / n * 1e6:.0f} µs CPU/tx)")
        # more than the Sender can send, but not a schedule of gigabytes: twice the bare loop's rate
        # (50,000 a second asked for 5 s signed 250,000 chunks of 32 kB ahead and looked hung)
        flood = 2 * n / wall
        for mode in args.modes.split(","):
            r = asyncio.run(sender_run(url, args.workers, flood, args.seconds, presign_all=True, mode=mode))
            top = r["sent"] / r["wall"]
            print(
                f"[{mode}] loadgen Sender, all pre-signed:  {top:8.0f} tx/s wall, {r['sent'] / r['cpu']:8.0f} tx/s per core "
                f"({r['cpu'] / r['sent'] * 1e6:.0f} µs CPU/tx), {r['sent'] / r['cpu'] / bare:.0%} of the bare loop; "
                f"signing ahead cost {r['sign_us']:.0f} µs CPU/tx"
            )
            r2 = asyncio.run(sender_run(url, args.workers, flood, args.seconds, presign_all=False, mode=mode))
            print(
                f"[{mode}] loadgen Sender, signing as it goes (64 MB ahead): {r2['sent'] / r2['wall']:8.0f} tx/s wall, "
                f"{r2['sent'] / r2['cpu']:8.0f} tx/s per core ({r2['cpu'] / r2['sent'] * 1e6:.0f} µs CPU/tx)"
            )
            r3 = asyncio.run(sender_run(url, args.workers, 0.8 * top, args.seconds, presign_all=True, mode=mode))
            print(
                f"[{mode}] loadgen Sender at 80% of its maximum ({0.8 * top:.0f}/s): {r3['sent'] / r3['wall']:8.0f} tx/s, "
                f"{r3['cpu'] / r3['sent'] * 1e6:.0f} µs CPU/tx, "
                f"schedule lag p50 {np.percentile(r3['lag'], 50) * 1e3:.2f} ms, p99 {np.percentile(r3['lag'], 99) * 1e3:.2f} ms"
            )
            r4 = asyncio.run(sender_run(url, args.workers, args.rate, args.seconds, presign_all=True, mode=mode))
            print(
                f"[{mode}] loadgen Sender at {args.rate:.0f}/s: {r4['cpu'] / r4['sent'] * 1e6:.0f} µs CPU/tx, "
                f"schedule lag p50 {np.percentile(r4['lag'], 50) * 1e3:.2f} ms, p99 {np.percentile(r4['lag'], 99) * 1e3:.2f} ms"
            )
    finally:
        endpoint.terminate()


if __name__ == "__main__":
    main()

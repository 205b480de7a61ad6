"""The driver's ingest path: per-transaction rows into Prometheus metrics and Parquet.

    .venv/bin/python benchmarks/ingest.py            # ingest rate and scrape time
    .venv/bin/python benchmarks/ingest.py memory     # peak driver memory for 1,000,000 transactions

Rows arrive as actors ship them (Arrow tables of 5,000 rows); each goes through
RunMetrics.rows (counters, latency and lag histograms) and the RunStore (part files, merged at
the end), then the summary is computed as a run does it.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadgen.chains.devnet import free_port
from loadgen.engine import run as _run_module  # noqa: F401 - the real driver's imports (Ray, web3), for a fair RSS
from loadgen.engine.metrics import MetricsServer, RunMetrics
from loadgen.engine.store import RunStore
from loadgen.report.summary import summarize_file
from tests.support.runs import synthetic_rows

BATCH = 5_000


def ingest(total: int, serve: bool) -> tuple[float, float | None, Path]:
    out = Path(tempfile.mkdtemp())
    metrics = RunMetrics("bench", "bench", "fl-round", 0.85)
    server = MetricsServer(free_port(), "127.0.0.1", linger_s=0) if serve else None
    if server is not None:
        server.show(metrics)
    metrics.init_series(["http://a"], ["reveal"])
    store = RunStore(out / "run", flush_s=2.0)
    batch = synthetic_rows("bench", n=BATCH)
    started = time.perf_counter()
    for _ in range(total // BATCH):
        metrics.add(batch)
        store.transactions.add(batch)
    store.close()
    elapsed = time.perf_counter() - started
    scrape = None
    if server is not None:
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
            r.read()
        scrape = time.perf_counter() - t
        server.close()
    summarize_file(out / "run" / "transactions.parquet", 0.85)
    return total / elapsed, scrape, out


def main() -> None:
    if sys.argv[1:] == ["memory"]:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rate, _, _ = ingest(1_000_000, serve=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"1,000,000 transactions: driver peak RSS {peak:.0f} MB (after imports {base:.0f} MB); ingest {rate:,.0f} rows/s")
        return
    rate, scrape, _ = ingest(100_000, serve=True)
    assert scrape is not None  # served: scraped
    print(f"ingest (metrics + Parquet): {rate:,.0f} rows/s")
    print(f"Prometheus scrape after 100,000 transactions: {scrape * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

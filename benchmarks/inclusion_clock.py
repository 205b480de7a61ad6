"""How precisely loadgen knows when a transaction was included: the time its block was seen
(``t_included``, on the sending host's clock) against the block's own timestamp.

    LOADGEN_GOQUORUM=/path/to/geth .venv/bin/python benchmarks/inclusion_clock.py

Runs the quickstart on a 4-node GoQuorum raft network, whose blocks are stamped in nanoseconds
when they are minted (QBFT and clique stamp whole seconds, too coarse for this), on the same
host, so both clocks are one. The difference is how long a block takes from being minted to
being seen by the watcher: the watcher's poll interval, its fetch, and raft's own propagation.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.config import schema as config
from loadgen.engine.run import Run


def main() -> None:
    experiment = config.load(
        "configs/quickstart.yaml", {"chain.devnet.client": "goquorum", "chain.devnet.consensus": "raft", "workload.model_length": 40_000}
    )
    result = Run(experiment, Path(tempfile.mkdtemp()), metrics_port=0).execute()
    blocks = pq.read_table(result.run_dir / "blocks.parquet")
    seen = blocks.column("t_observed").to_numpy() - blocks.column("timestamp").to_numpy()
    rows = pq.read_table(result.run_dir / "transactions.parquet")
    committed = rows.filter(pc.equal(rows.column("status"), "committed"))
    tx_seen = committed.column("t_included").to_numpy() - committed.column("block_timestamp").to_numpy()
    print(f"{len(seen)} blocks, {len(tx_seen)} committed transactions on GoQuorum raft")
    for name, values in (("block seen − block minted", seen), ("t_included − block timestamp", tx_seen)):
        ms = np.percentile(values, [0, 50, 90, 99, 100]) * 1e3
        print(f"{name}: min {ms[0]:.1f} ms, p50 {ms[1]:.1f}, p90 {ms[2]:.1f}, p99 {ms[3]:.1f}, max {ms[4]:.1f}")


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit(__doc__)
    main()

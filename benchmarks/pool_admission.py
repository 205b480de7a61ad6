"""Why GoQuorum loses what geth refuses: the same overflow of small pools on each client, with
the nodes' own trace lines counted (EXPERIMENTS.md, "Why, in GoQuorum's source").

    .venv/bin/python benchmarks/pool_admission.py --client geth
    LOADGEN_GOQUORUM=/path/to/geth .venv/bin/python benchmarks/pool_admission.py --client goquorum

A 4-node network whose pools hold 12 pending + 4 queued transactions (remote only:
``--txpool.nolocals``), its nodes logging at trace level; 8 workers reveal 20 chunks each every
0.05 s, far more than the pools hold. Printed: what loadgen recorded (refused, sent again after a
node lost it, dropped) and, from the nodes' logs, how often a full pool refused a newcomer
("Discarding underpriced transaction", geth's admission check) and how often it evicted a
transaction it had accepted to take a newcomer ("Discarding freshly underpriced transaction",
GoQuorum's path on a chain without gas prices).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import ray

from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings, TxpoolSettings
from loadgen.config import schema as config
from loadgen.engine.run import Run

REFUSED = "Discarding underpriced transaction"
EVICTED = "Discarding freshly underpriced transaction"
POOLS = TxpoolSettings(account_slots=2, global_slots=12, account_queue=2, global_queue=4, no_locals=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", default="geth", choices=("geth", "goquorum"))
    args = parser.parse_args()
    os.environ.setdefault("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    goquorum = args.client == "goquorum"
    with tempfile.TemporaryDirectory() as tmp:
        settings = GethNetworkSettings(
            nodes=4,
            consensus="qbft" if goquorum else "clique",
            gas_price=0 if goquorum else 1,
            txpool=POOLS,
            verbosity=5,
            data_dir=Path(tmp) / "network",
        )
        ray.init(address="local", include_dashboard=False, logging_level=logging.ERROR)
        try:
            with GethNetwork(settings) as net:
                experiment = config.from_dict(
                    {
                        "name": f"pool-admission-{args.client}",
                        "chain": {"endpoints": net.urls},
                        "workload": {
                            "kind": "fl-round",
                            "model_length": 20_000,
                            "redundancy": 4,
                            "pools": 2,
                            "pace_s": 0.05,
                            "max_retries": 2,
                        },
                        "run": {"commit_timeout_s": 15, "gap_check_s": 2.0},
                    }
                )
                result = Run(experiment, Path(tmp) / "runs", metrics_port=None).execute()
                logs = [p.read_text(errors="replace") for p in sorted((Path(tmp) / "network").glob("node*.log"))]
        finally:
            ray.shutdown()
    s = result.summary
    print(f"{args.client}: {net.describe()}")
    print(f"loadgen: {s['scheduled']:,} scheduled, {s['committed']:,} committed, {s['rejected']:,} refused by a node, "
          f"{s.get('resends', 0):,} sent again, {s['dropped']:,} dropped")  # fmt: skip
    print(f"nodes' logs: '{REFUSED}' {sum(log.count(REFUSED) for log in logs):,}, '{EVICTED}' {sum(log.count(EVICTED) for log in logs):,}")


if __name__ == "__main__":
    main()

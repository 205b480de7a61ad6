"""Diablo result files (the study's load generator) as loadgen runs.

Diablo writes ``{"Locations":[{"Clients":[{"Interactions":[{"SubmitTime", "CommitTime",
"AbortTime", "HasError"}]}]}]}``, times in seconds from the start of its run and -1 where
something did not happen. Each interaction becomes one row; what the file says is kept as is:

- committed: a CommitTime. Diablo saw the hash in a block and never read the receipt, so a
  reverted transaction is in here too;
- rejected: HasError, or an AbortTime;
- dropped: submitted, neither committed nor aborted. Diablo stopped recording at its last send,
  so transactions still in flight then are here although they may have committed later;
- unsent: no SubmitTime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from loadgen.common.errors import UserError
from loadgen.engine.schema import TX_SCHEMA
from loadgen.engine.store import RunStore
from loadgen.report.summary import summarize

CAVEATS = (
    "Diablo counts a reverted transaction as committed (it never reads receipts): committed here may include reverted ones",
    "Diablo stops recording at its last send: transactions still in flight then show as dropped",
)


def _status(interaction: dict) -> str:
    if interaction.get("SubmitTime", -1) < 0:
        return "unsent"
    if interaction.get("CommitTime", -1) >= 0:
        return "committed"
    if interaction.get("HasError") or interaction.get("AbortTime", -1) >= 0:
        return "rejected"
    return "dropped"


def read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        locations = data["Locations"]
        if not isinstance(locations, list):
            raise TypeError
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f'{path} is not a Diablo result file (expected {{"Locations": [{{"Clients": [...]}}]}})') from None
    return data


def to_table(data: dict[str, Any], run_id: str) -> pa.Table:
    rows: dict[str, list] = {name: [] for name in TX_SCHEMA.names}
    worker = 0
    for loc_index, location in enumerate(data["Locations"]):
        for client in location.get("Clients", []):
            for i, it in enumerate(client.get("Interactions", [])):
                status = _status(it)
                submit = it.get("SubmitTime", -1)
                commit = it.get("CommitTime", -1)
                sent = float(submit) if submit >= 0 else None
                included = float(commit) if status == "committed" else None
                values = {
                    "run_id": run_id, "trial": 0, "epoch": 0, "round_id": 0, "worker": worker, "pool": -1,
                    "phase": "diablo", "chunk_index": i, "attempt": 1, "nonce": -1, "endpoint": f"location-{loc_index}",
                    "node": f"location-{loc_index}", "tx_hash": None, "size_bytes": 0,
                    "t_scheduled": float(submit) if submit >= 0 else 0.0, "t_sent": sent, "t_acked": sent,
                    "t_included": included, "block_number": None, "block_timestamp": None, "status": status,
                    "error": "diablo: HasError" if it.get("HasError") else None, "gas_used": None, "effective_gas_price": None,
                    "latency_s": included - sent if included is not None and sent is not None else None, "resends": 0,
                    "recovered": False, "late_s": None,
                }  # fmt: skip
                for name, value in values.items():
                    rows[name].append(value)
            worker += 1
    return pa.table(rows, schema=TX_SCHEMA)


def import_file(path: Path, out: Path, threshold: float) -> Path:
    run_id = f"diablo-{path.stem}"
    table = to_table(read(path), run_id)
    run_dir = out / run_id
    store = RunStore(run_dir, flush_s=0)
    store.transactions.add(table)
    store.close()
    store.write_json("manifest.json", {"run_id": run_id, "imported_from": str(path), "tool": "diablo", "caveats": list(CAVEATS)})
    store.write_json("summary.json", summarize(table, threshold) | {"run_id": run_id, "rounds": [], "caveats": list(CAVEATS)})
    return run_dir

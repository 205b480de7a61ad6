"""What a run records, as stored: the transaction and block row schemas and the statuses.

Both the actors (which build the rows) and the driver (which stores and reports them) use these,
so they live on the pure side.
"""

from __future__ import annotations

import pyarrow as pa

STATUSES = ("committed", "reverted", "rejected", "dropped", "unsent")

TX_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("trial", pa.int32()),
        ("epoch", pa.int32()),
        ("round_id", pa.int64()),
        ("worker", pa.int32()),
        ("pool", pa.int32()),
        ("phase", pa.string()),
        ("chunk_index", pa.int32()),
        ("attempt", pa.int16()),
        ("nonce", pa.int64()),
        ("endpoint", pa.string()),
        ("node", pa.string()),
        ("tx_hash", pa.string()),
        ("size_bytes", pa.int32()),
        ("t_scheduled", pa.float64()),
        ("t_sent", pa.float64()),
        ("t_acked", pa.float64()),
        ("t_included", pa.float64()),
        ("block_number", pa.int64()),
        ("block_timestamp", pa.float64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("gas_used", pa.int64()),
        ("effective_gas_price", pa.int64()),
        ("latency_s", pa.float64()),
        ("resends", pa.int16()),
        # the row was rebuilt from the chain after its sender actor was lost (t_sent unknown)
        ("recovered", pa.bool_()),
        # included after the phase's commit deadline (its last send + commit_timeout_s), by this
        # much: on the chain, but not committed within the timeout (null: in time, or not included)
        ("late_s", pa.float64()),
    ]
)

# each node's transaction pool (txpool_status) as the driver sampled it, about once a second
TXPOOL_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("trial", pa.int32()),
        ("t", pa.float64()),
        ("endpoint", pa.string()),
        ("pending", pa.int64()),
        ("queued", pa.int64()),
    ]
)

BLOCK_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("trial", pa.int32()),
        ("number", pa.int64()),
        ("timestamp", pa.float64()),
        ("tx_count", pa.int32()),
        ("gas_used", pa.int64()),
        ("gas_limit", pa.int64()),
        ("t_observed", pa.float64()),
    ]
)

"""Broken and hostile answers from a node, one kind per run, on a real Anvil behind the fault
proxy: no crash, no hang, every scheduled transaction has one row, the rows that met a bad
answer say what came back, and what the chain holds is what the rows say."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from loadgen.chains.chain import connect
from loadgen.config import schema as config
from tests.support.faults import HOSTILE, SLOW_S, FaultProxy, Faults
from tests.support.runs import assert_the_chain_agrees, execute, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos]

RATE, SECONDS, WORKERS = 10, 4, 2
SCHEDULED = RATE * SECONDS
RECEIPTS = {"eth_getBlockReceipts", "eth_getTransactionReceipt"}

# what a rejected row's error says for each kind of answer to a send, and whether the node may
# have the transaction all the same (then the row follows it as sent, and says so)
SEND_FAULTS = {
    "slow": ("timeout: no answer", True),
    "truncated": ("http: not JSON", True),
    "not-json": ("http: not JSON: b'<html>", True),
    "odd-error": ("rpc: ", False),
    "http-429": ("http: HTTP 429 the gateway says no", False),
    "http-500": ("http: HTTP 500 the gateway says no", False),
    "http-503": ("http: HTTP 503 the gateway says no", False),
}


def experiment(url: str, key_offset: int) -> config.Experiment:
    return config.from_dict(
        {
            "chain": {"endpoints": [url]},
            "workload": {"kind": "array-copy", "array_size": 20, "rate_tps": RATE, "duration_s": SECONDS, "workers": WORKERS},
            "run": {"commit_timeout_s": 15, "lead_time_s": 0.5, "gap_check_s": 1.0, "key_offset": key_offset},
        }
    )


def faults_for(mode: str) -> Faults:
    if mode.startswith("http-"):  # bursts: 4 refusals in a row every 10 sends
        return Faults(hostile=mode, hostile_every=10, hostile_burst=4)
    if mode == "wrong-ids":  # batches of receipt look-ups answered with the wrong ids
        return Faults(hostile=mode, hostile_every=2, hostile_methods={"eth_getTransactionReceipt"}, hide_methods={"eth_getBlockReceipts"})
    if mode == "unknown-receipt":
        return Faults(hostile=mode, hostile_every=3, hostile_methods=RECEIPTS)
    return Faults(hostile=mode, hostile_every=7)


def rows(table: pa.Table, status: str) -> list[dict]:
    return [r for r in table.to_pylist() if r["status"] == status]


@pytest.mark.parametrize("mode", HOSTILE)
def test_a_hostile_answer_costs_its_own_row_at_most(chain, tmp_path, mode):
    faults = faults_for(mode)
    started = time.monotonic()
    with FaultProxy(chain.url, faults) as proxy:
        result, table = execute(experiment(proxy.url, 30_000 + 10 * HOSTILE.index(mode)), tmp_path)
    took = time.monotonic() - started
    assert faults.hostile_hits > 0
    keys = list(zip(table.column("worker").to_pylist(), table.column("chunk_index").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == SCHEDULED
    counts = statuses(table)
    assert set(counts) <= {"committed", "rejected", "unsent"}, counts  # nothing dropped, nothing reverted
    assert_the_chain_agrees(connect(chain.url), table)
    # a refused slot's transaction goes again in the next one: at most the last ones are left unsent
    assert counts.get("unsent", 0) <= counts.get("rejected", 0)
    assert took < SECONDS + 2 * SLOW_S + 30  # no hang: at most a lost answer's timeout or two
    if mode in SEND_FAULTS:
        says, maybe_delivered = SEND_FAULTS[mode]
        noted = [r for r in table.to_pylist() if r["error"] and r["error"].startswith(says)]
        assert noted
        if maybe_delivered:  # followed as sent: found in a block, its row says how the answer went
            assert all(r["status"] == "committed" and r["error"].endswith("(the node may have it: followed as sent)") for r in noted)
            assert result.summary["unconfirmed"] == len(noted)
        else:
            assert {r["status"] for r in noted} == {"rejected"}
            assert len(noted) == counts["rejected"] == faults.hostile_hits
    else:  # answers about sends that went through, or about inclusions: every row committed
        assert counts == {"committed": SCHEDULED}
    if mode == "wrong-hash":
        assert result.summary["odd_answers"] == faults.hostile_hits

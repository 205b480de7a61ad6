"""The engine end to end on real Anvil nodes, with faults injected by a proxy in front of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loadgen.chains import contracts
from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import ConfigError
from loadgen.config import schema as config
from loadgen.config.accounts import derive_account, mnemonic_source
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import execute, fl_experiment, local_ray, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray]


@pytest.fixture(scope="module", autouse=True)
def with_ray():
    with local_ray():
        yield


@pytest.fixture
def chain(monkeypatch):
    # explicit endpoints need a mnemonic from the environment, as on a real network
    monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    with Devnet(DevnetSettings(block_time_s=0.25)) as node:
        yield node


@pytest.mark.slow
def test_quickstart_end_to_end_on_the_embedded_geth_network(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "run", "configs/quickstart.yaml", "--out", str(tmp_path), "--json", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["commit_ratio"] == 1.0
    assert summary["scheduled"] == summary["committed"] == 2 * 3 * (1 + 10)
    (run_dir,) = tmp_path.iterdir()
    assert f"; next: loadgen report {run_dir}\n" in result.stderr  # whole, on one line, though the log is 80 columns wide
    table = pq.read_table(run_dir / "transactions.parquet")
    assert table.num_rows == summary["scheduled"]
    keys = list(zip(*(table.column(c).to_pylist() for c in ("worker", "phase", "chunk_index", "attempt")), strict=True))
    assert len(set(keys)) == len(keys)  # one row per scheduled transaction
    assert set(table.column("status").to_pylist()) == {"committed"}
    assert all(lat > 0 for lat in table.column("latency_s").to_pylist())
    assert [p["expected"] for p in summary["rounds"][0]["pools"]] == [True, True]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["embedded_devnet"] is True
    assert (manifest["devnet"]["client"], manifest["devnet"]["nodes"], len(manifest["endpoints"])) == ("geth", 4, 4)
    assert manifest["chain"]["client_version"].startswith("Geth/v1.10.3")
    assert len(set(table.column("endpoint").to_pylist())) == 4
    assert DEV_MNEMONIC not in (run_dir / "manifest.json").read_text()
    assert (run_dir / "blocks.parquet").exists()


def test_round_completes_on_chain_with_rewards(chain, tmp_path):
    experiment = fl_experiment([chain.url])
    result, table = execute(experiment, tmp_path)
    assert result.summary["commit_ratio"] == 1.0
    assert statuses(table) == {"committed": 4 * (1 + 3)}
    (rnd,) = result.summary["rounds"]
    assert [(p["votes"], p["expected"]) for p in rnd["pools"]] == [(2, True), (2, True)]
    w3 = connect(chain.url)
    fl = w3.eth.contract(address=rnd["contract"], abi=contracts.load("FederatedLearning").abi)
    senders = {w3.eth.get_transaction(h)["from"] for h in table.column("tx_hash").to_pylist()[:50]}
    assert senders and all(fl.functions.rewardOf(a).call() == 1 for a in senders)
    # nonces per worker are contiguous: commit, then every chunk in order
    by_worker = defaultdict(list)
    for w, n in zip(table.column("worker").to_pylist(), table.column("nonce").to_pylist(), strict=True):
        by_worker[w].append(n)
    assert all(sorted(n) == list(range(min(n), min(n) + 4)) for n in by_worker.values())


def test_a_run_plays_on_the_contract_an_earlier_run_deployed(chain, tmp_path):
    first, _ = execute(fl_experiment([chain.url]), tmp_path / "first")
    address = first.summary["rounds"][0]["contract"]
    second, table = execute(fl_experiment([chain.url], contract=address), tmp_path / "second")
    assert statuses(table) == {"committed": 4 * (1 + 3)}
    (rnd,) = second.summary["rounds"]
    assert rnd["contract"] == address and rnd["round_id"] == first.summary["rounds"][0]["round_id"] + 1
    assert [p["expected"] for p in rnd["pools"]] == [True, True]
    assert json.loads((second.run_dir / "manifest.json").read_text())["contracts"] == {"FederatedLearning": address}

    w3 = connect(chain.url)
    counter = contracts.deploy(w3, derive_account(mnemonic_source(DEV_MNEMONIC), 0).account(), "Counter").address
    for other, what in ((counter, "code that is not this loadgen's FederatedLearning"), ("0x" + "11" * 20, "no code")):
        with pytest.raises(ConfigError, match=what) as caught:
            execute(fl_experiment([chain.url], contract=other), tmp_path / "wrong")
        assert caught.value.field == "workload.contract"


def test_the_next_epochs_round_opens_in_the_block_that_ends_the_last(chain, tmp_path):
    result, table = execute(fl_experiment([chain.url], epochs=2), tmp_path)
    assert statuses(table) == {"committed": 2 * 4 * (1 + 3)}
    first, second = result.summary["rounds"]
    assert result.summary["rounds_opened_ahead"] == 1
    assert [p["expected"] for r in (first, second) for p in r["pools"]] == [True] * 4
    assert set(table.column("round_id").to_pylist()) == {first["round_id"], second["round_id"]}
    w3 = connect(chain.url)
    fl = w3.eth.contract(address=first["contract"], abi=contracts.load("FederatedLearning").abi)
    (opened,) = fl.events.RoundOpened().get_logs(from_block=0, argument_filters={"roundId": second["round_id"]})
    elected = fl.events.ModelElected().get_logs(from_block=0, argument_filters={"roundId": first["round_id"]})
    # sent back to back: in the elections' block, or the next one when a block was sealed between
    assert {e["blockNumber"] for e in elected} <= {opened["blockNumber"], opened["blockNumber"] - 1}
    second_rows = table.filter(pc.equal(table.column("round_id"), second["round_id"]))
    assert opened["blockNumber"] < pc.min(second_rows.column("block_number")).as_py()


@pytest.mark.chaos
def test_rejected_transactions_keep_their_nonce_and_are_counted_exactly(chain, tmp_path):
    faults = Faults(reject_every=5)
    with FaultProxy(chain.url, faults) as proxy:
        result, table = execute(fl_experiment([proxy.url]), tmp_path)
    counts = statuses(table)
    assert counts["rejected"] == faults.rejected > 0
    assert counts["committed"] == 4 * (1 + 3)  # every chunk got through on a later slot
    assert result.summary["commit_ratio"] == pytest.approx(16 / (16 + faults.rejected))
    rejected = table.filter(pc.equal(table.column("status"), "rejected"))
    assert set(rejected.column("error").to_pylist()) == {"rpc: txpool is full"}
    retried = {(w, p, c) for w, p, c in zip(*(rejected.column(k).to_pylist() for k in ("worker", "phase", "chunk_index")), strict=True)}
    committed = table.filter(pc.equal(table.column("status"), "committed"))
    rows = zip(*(committed.column(k).to_pylist() for k in ("worker", "phase", "chunk_index", "attempt")), strict=True)
    assert {(w, p, c) for w, p, c, a in rows if a > 1} == retried  # the retry is the next attempt of the same chunk
    by_worker = defaultdict(list)
    for w, n in zip(committed.column("worker").to_pylist(), committed.column("nonce").to_pylist(), strict=True):
        by_worker[w].append(n)
    assert all(sorted(n) == list(range(min(n), min(n) + 4)) for n in by_worker.values())  # no nonce burned


@pytest.mark.chaos
def test_dropped_transactions_are_detected_and_recovered(chain, tmp_path):
    faults = Faults(drop_every=4)
    with FaultProxy(chain.url, faults) as proxy:
        result, table = execute(fl_experiment([proxy.url]), tmp_path)
    assert faults.dropped
    assert statuses(table) == {"committed": 16}
    resent = {h for h, r in zip(table.column("tx_hash").to_pylist(), table.column("resends").to_pylist(), strict=True) if r > 0}
    assert resent == faults.dropped
    assert result.summary["resends"] == len(faults.dropped)


@pytest.mark.chaos
def test_a_gap_that_cannot_be_filled_ends_as_dropped_and_the_run_ends(chain, tmp_path):
    faults = Faults(drop_every=1, drop_resends=True)  # the node loses everything the workers send
    experiment = fl_experiment([], pools=1)
    with FaultProxy(chain.url, faults) as proxy:
        raw = experiment.model_dump() | {"run": {"commit_timeout_s": 2, "lead_time_s": 0.5, "gap_check_s": 0.5}}
        raw["chain"]["endpoints"] = [proxy.url]
        result, table = execute(config.from_dict(raw), tmp_path)
    counts = statuses(table)
    assert counts == {"dropped": 2 * (1 + 3)}
    assert all("not in a block 2s after the last send" in e for e in table.column("error").to_pylist())
    assert result.exit_code == 1
    # said, not left as a bare count: per phase, how many and the likely causes (here: every
    # accepted transaction forgotten by the node, and sent again by the gap check)
    diagnosed = {d["phase"]: d for d in result.summary["diagnosis"]}
    assert set(diagnosed) == {"commit", "reveal"}
    assert diagnosed["reveal"]["dropped"] == diagnosed["reveal"]["accepted"] == 2 * 3
    assert any(c.startswith("the nodes forgot") for c in diagnosed["reveal"]["causes"])


@pytest.mark.chaos
def test_slow_inclusion_shows_in_latency(chain, tmp_path):
    faults = Faults(delay_s=1.5)
    with FaultProxy(chain.url, faults) as proxy:
        raw = fl_experiment([proxy.url]).model_dump() | {"run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 5}}
        experiment = config.from_dict(raw)
        result, table = execute(experiment, tmp_path)
    assert result.summary["commit_ratio"] == 1.0
    assert min(table.column("latency_s").to_pylist()) >= 1.5
    assert result.summary["latency_p50_s"] >= 1.5


def test_array_copy_large_arrays_revert_and_are_not_committed(chain, tmp_path):
    raw = {
        "chain": {"endpoints": [chain.url], "gas_limit": 5_000_000},
        "workload": {"kind": "array-copy", "array_size": 5_000, "rate_tps": 10, "duration_s": 1, "workers": 2},
        "run": {"commit_timeout_s": 10, "lead_time_s": 0.5},
    }
    result, table = execute(config.from_dict(raw), tmp_path)
    assert statuses(table) == {"reverted": 10}
    assert result.summary["committed"] == 0
    assert result.summary["commit_ratio"] == 0.0
    assert set(table.column("gas_used").to_pylist()) == {5_000_000}
    assert result.exit_code == 1


def test_nonzero_gas_price_funds_the_workers_first(monkeypatch, tmp_path):
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    _, phrase = Account.create_with_mnemonic()
    monkeypatch.setenv("LOADGEN_MNEMONIC", phrase)
    gwei = 10**9
    with Devnet(DevnetSettings(block_time_s=0.25, gas_price=gwei)) as node:
        w3 = connect(node.url)
        funder = Account.from_mnemonic(phrase, account_path="m/44'/60'/0'/0/0").address
        w3.provider.make_request("anvil_setBalance", [funder, hex(10**21)])
        result, table = execute(fl_experiment([node.url], pools=1), tmp_path)
        workers = {w3.eth.get_transaction(h)["from"] for h in table.column("tx_hash").to_pylist()}
        assert len(workers) == 2
        assert all(w3.eth.get_balance(a) > 0 for a in workers)
    assert result.summary["commit_ratio"] == 1.0
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["funding"]["topped_up"] == 2
    assert phrase not in (result.run_dir / "manifest.json").read_text()


def long_run_revealing(tmp_path) -> subprocess.Popen:
    """`loadgen run` of a quickstart with 200 chunks a worker, returned once it reveals."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "configs/quickstart.yaml", "--out", str(tmp_path), "--metrics-port", "0",
         "--set", "workload.model_length=200000", "--set", "chain.devnet.client=anvil", "--set", "chain.devnet.block_time_s=0.25"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if "reveal" in line:  # progress lines show the reveal phase is under way
            return proc
    raise AssertionError(f"the run ended before revealing (exit {proc.wait()})")


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_leaves_a_complete_file(tmp_path):
    proc = long_run_revealing(tmp_path)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    (run_dir,) = tmp_path.iterdir()
    table = pq.read_table(run_dir / "transactions.parquet")
    counts = statuses(table)
    assert counts["committed"] > 6
    assert counts["unsent"] > 0  # the rest of every model, scheduled but never sent
    assert table.num_rows == 6 * (1 + 200)  # still one row for every scheduled transaction
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["scheduled"] == table.num_rows


@pytest.mark.chaos
def test_nodes_without_eth_getBlockReceipts_get_batched_receipt_lookups(chain, tmp_path):
    faults = Faults(hide_methods={"eth_getBlockReceipts"})
    with FaultProxy(chain.url, faults) as proxy:
        result, _ = execute(fl_experiment([proxy.url], pools=1), tmp_path)
    assert result.summary["commit_ratio"] == 1.0
    assert faults.calls["eth_getBlockReceipts"] == 1  # tried once, then never again
    assert faults.calls["eth_getTransactionReceipt"] >= 8


@pytest.mark.slow
def test_sigkill_keeps_the_flushed_rows_readable(tmp_path):
    from loadgen.engine.store import finalize

    proc = long_run_revealing(tmp_path)
    time.sleep(5)  # more than one flush period
    proc.kill()
    proc.wait(10)
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "transactions.parquet").exists()
    parts = pq.read_table(run_dir / "transactions.parts")  # any Parquet reader opens the parts as a dataset
    assert parts.num_rows > 6
    assert statuses(parts).get("committed", 0) > 6
    assert finalize(run_dir)
    merged = pq.read_table(run_dir / "transactions.parquet")
    assert merged.num_rows == parts.num_rows
    assert not (run_dir / "transactions.parts").exists()


@pytest.mark.chaos
def test_a_coordinator_transaction_that_never_lands_is_a_one_line_error(chain):
    from loadgen.chains.chain import send_transaction
    from loadgen.common.errors import ChainStalled
    from loadgen.config.accounts import MnemonicSource, derive_account

    account = derive_account(MnemonicSource("t", DEV_MNEMONIC), 0).account()
    faults = Faults(drop_every=1, drop_resends=True, exempt=set())  # the node loses the coordinator's too
    stalled = pytest.raises(ChainStalled, match="did not include a transaction of the coordinator within 1s")
    with FaultProxy(chain.url, faults) as proxy, stalled as caught:
        send_transaction(connect(proxy.url), account, to=account.address, data=b"", gas=21_000, timeout_s=1)
    assert "\n" not in str(caught.value) and "stalled or overloaded" in str(caught.value)


def test_a_transfer_run_imports_neither_web3_nor_eth_account(chain, tmp_path):
    # a run that deploys nothing reaches the chain through loadgen's own client and keys: web3
    # and eth-account cost half a CPU-second to import (BENCHMARKS.md, issue 25)
    spec = tmp_path / "transfer.yaml"
    spec.write_text("name: lean\nworkload: {kind: transfer, workers: 2, rate_tps: 10, duration_s: 1}\n")
    argv = ["run", str(spec), "--endpoints", chain.url, "--metrics-port", "0", "--out", str(tmp_path / "runs")]
    argv += ["--set", "run.hosting=process", "--set", "run.key_offset=73000"]
    code = (
        f"import sys; from loadgen.cli import main; rc = main({argv!r}); "
        "print(rc, sorted(m for m in ('web3', 'eth_account', 'eth_abi', 'requests') if m in sys.modules))"
    )
    env = os.environ | {"LOADGEN_MNEMONIC": DEV_MNEMONIC}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines()[-1] == "0 []", out.stdout[-2000:] + out.stderr[-2000:]
    table = pq.read_table(next((tmp_path / "runs").iterdir()) / "transactions.parquet")
    assert statuses(table) == {"committed": 10}

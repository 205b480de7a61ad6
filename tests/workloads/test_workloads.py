"""The workloads users bring, run end to end on a real Anvil: the on-chain effect equals what the
`committed` rows say. The example configs in configs/examples are what these tests run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import ray
import yaml
from web3.contract import Contract

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import ConfigError
from loadgen.common.jsonfile import read_json
from loadgen.config import schema as config
from loadgen.workloads import WORKLOADS
from tests.support.runs import assert_one_row_per_attempt, assert_the_chain_agrees, execute

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "examples"
RUN = {"commit_timeout_s": 15, "lead_time_s": 0.5, "gap_check_s": 1.0}


@pytest.fixture(scope="module")
def chain():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    with Devnet(DevnetSettings(block_time_s=0.5)) as node:
        yield node
    mp.undo()
    ray.shutdown()


def example(name: str, url: str, key_offset: int, **workload) -> config.Experiment:
    raw = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    raw["chain"] = {k: v for k, v in raw.get("chain", {}).items() if k != "devnet"} | {"endpoints": [url]}
    raw["workload"] |= workload
    raw["run"] = RUN | {"key_offset": key_offset}
    return config.from_dict(raw)


def committed(table) -> list[dict]:
    return table.filter(pc.equal(table.column("status"), "committed")).to_pylist()


def deployed(url: str, experiment: config.Experiment, result) -> Contract:
    """The run's contract, as its manifest names it."""
    artifact = experiment.plugin.artifact
    address = read_json(result.run_dir / "manifest.json")["contracts"][artifact.name]
    return connect(url).eth.contract(address=address, abi=artifact.abi)


@pytest.mark.unit
def test_every_built_in_workload_is_registered():
    assert {"fl-round", "array-copy", "contract-call", "transfer"} <= set(WORKLOADS)
    assert len(list(EXAMPLES.glob("*.yaml"))) >= 5  # each is loaded, checked and planned in tests/config/test_schema.py


@pytest.mark.chain
@pytest.mark.ray
def test_counter_counts_exactly_the_committed_calls(chain, tmp_path):
    experiment = example("counter", chain.url, 2_000, rate_tps=40, duration_s=3, workers=4)
    result, table = execute(experiment, tmp_path)
    rows = committed(table)
    assert result.summary["committed"] == len(rows) == 120
    assert_one_row_per_attempt(table, 120)
    w3 = connect(chain.url)
    counter = deployed(chain.url, experiment, result)
    assert counter.functions.count().call() == len(rows)
    by_worker = Counter(r["worker"] for r in rows)
    for worker, n in by_worker.items():
        sender = w3.eth.get_transaction(next(r["tx_hash"] for r in rows if r["worker"] == worker))["from"]
        assert counter.functions.countOf(sender).call() == n
    assert_the_chain_agrees(w3, table)


@pytest.mark.chain
@pytest.mark.ray
def test_erc20_balances_follow_the_committed_transfers(chain, tmp_path):
    experiment = example("erc20", chain.url, 3_000, rate_tps=30, duration_s=3, workers=5)
    result, table = execute(experiment, tmp_path)
    rows = committed(table)
    assert len(rows) == result.summary["committed"] == 90
    w3 = connect(chain.url)
    token = deployed(chain.url, experiment, result)
    minted = 10**21
    net: Counter = Counter()
    senders = {}
    for r in rows:
        tx = w3.eth.get_transaction(r["tx_hash"])
        to, amount = token.decode_function_input(tx["input"])[1].values()
        senders[r["worker"]] = tx["from"]
        net[tx["from"]] -= amount
        net[to] += amount
    assert len(senders) == 5
    for address in senders.values():
        assert token.functions.balanceOf(address).call() == minted + net[address]


@pytest.mark.chain
@pytest.mark.ray
def test_kv_store_holds_one_write_per_committed_call(chain, tmp_path):
    experiment = example("kv-store", chain.url, 4_000, rate_tps=10, duration_s=2, workers=2)
    result, table = execute(experiment, tmp_path)
    rows = committed(table)
    assert len(rows) == 20
    w3 = connect(chain.url)
    kv = deployed(chain.url, experiment, result)
    assert kv.functions.writes().call() == 20
    tx = w3.eth.get_transaction(rows[0]["tx_hash"])
    key, value = kv.decode_function_input(tx["input"])[1].values()
    assert len(value) == 1_000 and kv.functions.get(key).call() == value
    assert min(r["gas_used"] for r in rows) > 700_000  # 1,000 fresh bytes of storage


@pytest.mark.chain
@pytest.mark.ray
def test_transfers_move_exactly_the_committed_value(chain, tmp_path):
    experiment = example("eip1559-transfers", chain.url, 5_000, rate_tps=30, duration_s=2, workers=3)
    experiment = experiment.with_overrides({"chain.tx_type": "legacy", "workload.value_wei": 7})
    result, table = execute(experiment, tmp_path)
    rows = committed(table)
    assert len(rows) == 60
    w3 = connect(chain.url)
    funded = read_json(result.run_dir / "manifest.json")["funding"]["wei_each"]
    net: Counter = Counter()
    for r in rows:
        tx = w3.eth.get_transaction(r["tx_hash"])
        assert tx["value"] == 7
        net[tx["from"]] -= 7
        net[tx["to"]] += 7
    assert len(net) == 3
    for address, delta in net.items():
        assert w3.eth.get_balance(address) == funded + delta  # gas is free on this chain
    assert_the_chain_agrees(w3, table)


@pytest.mark.chain
@pytest.mark.ray
def test_a_stepped_profile_is_offered_second_by_second(chain, tmp_path):
    raw = {
        "name": "steps",
        "chain": {"endpoints": [chain.url]},
        "workload": {
            "kind": "transfer",
            "workers": 8,
            "profile": {"shape": "steps", "steps": [{"rate_tps": 100, "duration_s": 2}, {"rate_tps": 200, "duration_s": 2}]},
        },
        "run": RUN | {"key_offset": 6_000},
    }
    experiment = config.from_dict(raw)
    result, table = execute(experiment, tmp_path)
    scheduled = np.sort(table.column("t_scheduled").to_numpy())
    offered = np.histogram(scheduled - scheduled[0], bins=4, range=(0, 4))[0]
    expected = np.array([100, 100, 200, 200])
    assert np.all(np.abs(offered - expected) <= 0.02 * expected)
    assert result.summary["committed"] == 600
    per_worker = Counter(table.column("worker").to_pylist())
    assert set(per_worker.values()) == {75}


@pytest.mark.chain
@pytest.mark.ray
def test_type_2_transactions_record_what_they_paid(chain, tmp_path):
    gwei = 10**9
    with Devnet(DevnetSettings(block_time_s=0.25, gas_price=gwei)) as node:  # a base fee of 1 gwei
        experiment = example("eip1559-transfers", node.url, 7_000, rate_tps=20, duration_s=1, workers=2)
        result, table = execute(experiment, tmp_path)
        rows = committed(table)
        assert len(rows) == 20
        fees = read_json(result.run_dir / "manifest.json")["fees"]
        assert fees["tx_type"] == "eip1559" and fees["max_fee"] >= gwei
        w3 = connect(node.url)
        for r in rows:
            receipt = w3.eth.get_transaction_receipt(r["tx_hash"])
            assert receipt["type"] == 2
            assert r["effective_gas_price"] == receipt["effectiveGasPrice"]
            assert gwei <= r["effective_gas_price"] <= fees["max_fee"]


@pytest.mark.subprocess  # solc runs in node
def test_a_contract_mistake_is_one_line_before_any_chain_starts():
    raw = yaml.safe_load((EXAMPLES / "counter.yaml").read_text())
    raw["chain"] = {"endpoints": ["http://127.0.0.1:9"]}  # nothing listens: the check must come first
    raw["workload"]["call"] = {"function": "incremnet"}
    with pytest.raises(ConfigError, match=r"workload.call.function.*has no function 'incremnet'.*increment"):
        config.from_dict(raw).plugin.check()
    raw["workload"]["call"] = {"function": "add", "args": []}
    with pytest.raises(ConfigError, match=r"workload.call.args.*add\(uint256\) takes 1 argument"):
        config.from_dict(raw).plugin.check()


@pytest.mark.chain
@pytest.mark.ray
def test_a_workload_from_outside_needs_no_engine_change(chain, tmp_path):
    """The guide's example (docs/workloads.md), word for word: a module of its own, registered, then run."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "workloads.md").read_text()
    source = guide.split("\nA complete one", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"__name__": "ping_plugin"}
    exec(compile(source, "docs/workloads.md", "exec", dont_inherit=True), namespace)
    try:
        raw = {"workload": {"kind": "ping", "rate_tps": 20, "duration_s": 1}, "chain": {"endpoints": [chain.url]}}
        result, table = execute(config.from_dict(raw | {"run": RUN | {"key_offset": 8_000}}), tmp_path)
        assert result.summary["committed"] == 20
        assert set(table.column("phase").to_pylist()) == {"ping"}
    finally:
        WORKLOADS.pop("ping")


@pytest.mark.subprocess
def test_a_workload_installed_as_a_package_is_found_by_its_entry_point_when_a_config_names_it(tmp_path):
    """The guide's example installed as another package would be: a module and an entry point in
    the group ``loadgen.workloads``. Read only when a config names a kind loadgen does not have."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "workloads.md").read_text()
    (tmp_path / "ping_plugin.py").write_text(guide.split("\nA complete one", 1)[1].split("```python\n", 1)[1].split("```", 1)[0])
    info = tmp_path / "ping_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ping-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loadgen.workloads]\nping = ping_plugin\n")
    code = (
        "import sys; from loadgen.config import schema as config\n"
        "before = 'ping_plugin' in sys.modules\n"
        "config.from_dict({'workload': {'kind': 'transfer', 'rate_tps': 1, 'duration_s': 1}})\n"
        "builtin = 'ping_plugin' in sys.modules\n"
        "e = config.from_dict({'workload': {'kind': 'ping', 'rate_tps': 20, 'duration_s': 1}})\n"
        "print(before, builtin, type(e.plugin).__name__)"
    )
    env = os.environ | {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert out == ["False", "False", "PingWorkload"]

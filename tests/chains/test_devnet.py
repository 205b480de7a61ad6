"""The embedded devnet is a real Anvil configured like a GoQuorum network."""

from __future__ import annotations

import itertools
import time

import pytest
from eth_account import Account

from loadgen.chains import devnet as devnet_mod
from loadgen.chains.chain import connect, send_transaction
from loadgen.chains.devnet import Devnet, DevnetSettings
from loadgen.chains.node import Node
from loadgen.chains.probe import probe
from loadgen.common.errors import ToolMissing
from tests.support.runs import children_of_a_killed_parent, pid_alive


@pytest.fixture(scope="module")
def paced_chain():
    with Devnet(DevnetSettings(block_time_s=1)) as node:
        yield node


@pytest.mark.chain
def test_quorum_like_settings(paced_chain):
    w3 = connect(paced_chain.url)
    info = probe(Node(paced_chain.url))
    assert info.chain_id == 1337
    assert info.gas_price == 0  # eth_gasPrice answers 0, as GoQuorum does
    assert info.block_gas_limit == 1_000_000_000
    assert info.client_version.startswith("anvil/")
    block = w3.eth.get_block("latest")
    assert block["baseFeePerGas"] == 0


@pytest.mark.chain
def test_blocks_come_every_second(paced_chain):
    w3 = connect(paced_chain.url)
    start = w3.eth.block_number
    while w3.eth.block_number < start + 3:
        time.sleep(0.1)
    stamps = [w3.eth.get_block(n)["timestamp"] for n in range(start + 1, start + 4)]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [1, 1]


@pytest.mark.chain
def test_unfunded_account_sends_legacy_tx_at_gas_price_zero(paced_chain):
    w3 = connect(paced_chain.url)
    stranger = Account.create()
    assert w3.eth.get_balance(stranger.address) == 0
    receipt = send_transaction(w3, stranger, to=stranger.address, data=b"", gas=21_000)
    assert receipt["status"] == 1
    assert receipt["type"] == 0  # legacy
    assert receipt["effectiveGasPrice"] == 0


@pytest.mark.chain
def test_free_ports_let_two_devnets_run_side_by_side():
    with Devnet(DevnetSettings(block_time_s=0)) as a, Devnet(DevnetSettings(block_time_s=0, chain_id=99)) as b:
        assert a.port != b.port
        assert probe(Node(a.url)).chain_id == 1337
        assert probe(Node(b.url)).chain_id == 99


@pytest.mark.chain
def test_stop_ends_the_process():
    node = Devnet(DevnetSettings(block_time_s=0)).start()
    pid = node.pids[0]
    node.stop()
    assert not pid_alive(pid)
    assert not node.running


@pytest.mark.chain
def test_no_orphan_when_the_parent_is_killed():
    pids, gone = children_of_a_killed_parent(
        "from loadgen.chains.devnet import Devnet, DevnetSettings\nchain = Devnet(DevnetSettings(block_time_s=0)).start()"
    )
    assert len(pids) == 1 and gone


@pytest.mark.chain
def test_a_taken_port_is_a_clear_error():
    with Devnet(DevnetSettings(block_time_s=0)) as a, pytest.raises(devnet_mod.UserError, match="is the port taken"):
        Devnet(DevnetSettings(block_time_s=0, port=a.port, chain_id=5)).start(timeout_s=3)


@pytest.mark.unit
def test_missing_anvil_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("LOADGEN_ANVIL", str(tmp_path / "nope"))
    with pytest.raises(ToolMissing, match="LOADGEN_ANVIL"):
        devnet_mod.anvil_binary()
    monkeypatch.delenv("LOADGEN_ANVIL")
    monkeypatch.setattr(devnet_mod, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="npm ci"):
        devnet_mod.anvil_binary()

"""The fee policy: its rules on a stand-in node, then on Anvil with a base fee, a Berlin Anvil and geth 1.10.3."""

from __future__ import annotations

import os

import pytest
from web3.exceptions import Web3RPCError

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEFAULT_CHAIN_ID, DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.chains.fees import Fees, resolve_fees
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.chains.node import Node, RpcError
from loadgen.chains.signer import Signer, sign_with
from loadgen.common.errors import ConfigError
from loadgen.config.accounts import MnemonicSource, derive_account

GWEI = 10**9
TO = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")


# --- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"tx_type": "legacy"},
        {"tx_type": "legacy", "gas_price": 1, "max_fee": 1},
        {"tx_type": "legacy", "gas_price": 1, "priority_fee": 0},
        {"tx_type": "legacy", "gas_price": -1},
        {"tx_type": "eip1559", "max_fee": 1},
        {"tx_type": "eip1559", "priority_fee": 1},
        {"tx_type": "eip1559", "max_fee": 1, "priority_fee": 2},
        {"tx_type": "eip1559", "max_fee": 2, "priority_fee": 1, "gas_price": 1},
        {"tx_type": "eip1559", "max_fee": -1, "priority_fee": -2},
        {"tx_type": "eip4844", "max_fee": 2, "priority_fee": 1},
    ],
)
@pytest.mark.unit
def test_inconsistent_fees_are_refused(fields):
    with pytest.raises(ValueError, match="inconsistent fees"):
        Fees(**fields)


@pytest.mark.unit
def test_worst_case_per_gas_and_manifest_form():
    legacy = Fees.legacy(7)
    dynamic = Fees.eip1559(max_fee=30 * GWEI, priority_fee=2 * GWEI)
    assert legacy.worst_case_per_gas() == 7
    assert dynamic.worst_case_per_gas() == 30 * GWEI
    assert legacy.to_dict() == {"tx_type": "legacy", "gas_price": 7, "max_fee": None, "priority_fee": None}
    assert dynamic.to_dict() == {"tx_type": "eip1559", "gas_price": None, "max_fee": 30 * GWEI, "priority_fee": 2 * GWEI}
    assert Fees(**dynamic.to_dict()) == dynamic


@pytest.mark.unit
def test_sign_with_picks_the_signing_method():
    signer = Signer(os.urandom(32), 1337)
    tx = {"nonce": 4, "gas": 50_000, "to": TO, "data": b"\x01\x02", "value": 9}
    legacy = sign_with(signer, Fees.legacy(5), **tx)
    dynamic = sign_with(signer, Fees.eip1559(max_fee=8, priority_fee=3), **tx)
    assert legacy.raw == signer.sign(gas_price=5, **tx).raw
    assert dynamic.raw == signer.sign_1559(max_fee=8, priority_fee=3, **tx).raw
    assert legacy.raw[0] >= 0xC0  # an RLP list: untyped
    assert dynamic.raw[0] == 2


class StandInNode:
    """Answers like loadgen's Node (hex, as a node does) for the calls resolve_fees makes, and records them."""

    def __init__(self, *, base_fee=None, history=None, priority=GWEI, gas_price=3 * GWEI):
        self._block = {"number": "0x9", "gasLimit": hex(30_000_000)} | ({} if base_fee is None else {"baseFeePerGas": hex(base_fee)})
        self.history = history
        self.priority = priority
        self._gas_price = gas_price
        self.calls: list[str] = []

    def block(self, tag="latest"):
        self.calls.append(f"block({tag})")
        return self._block

    def gas_price(self):
        self.calls.append("gas_price")
        return self._gas_price

    def call(self, method, *params):
        self.calls.append(f"{method}{list(params)}")
        if method == "eth_maxPriorityFeePerGas":
            return hex(self.priority)
        assert method == "eth_feeHistory"
        if self.history is None:
            raise RpcError(-32601, "the method eth_feeHistory does not exist/is not available")
        return self.history


def stand_in(**kwargs):
    return StandInNode(**kwargs)


class NoNode:
    def __getattr__(self, name):
        raise AssertionError("asked the node")


def node_of(w3):
    return Node(str(w3.provider.endpoint_uri))


def history(next_base_fee, blocks):
    """eth_feeHistory's answer for blocks given as (gas used ratio, 50th-percentile reward)."""
    return {
        "oldestBlock": 1,
        "baseFeePerGas": [hex(GWEI)] * len(blocks) + [hex(next_base_fee)],
        "gasUsedRatio": [ratio for ratio, _ in blocks],
        "reward": [[hex(reward)] for _, reward in blocks],
    }


@pytest.mark.unit
def test_legacy_uses_the_given_gas_price_without_asking():
    assert resolve_fees(NoNode(), "legacy", 0, None, None) == Fees.legacy(0)
    assert resolve_fees(NoNode(), "legacy", 5, None, None) == Fees.legacy(5)


@pytest.mark.unit
def test_legacy_asks_the_node_for_its_gas_price():
    w3 = stand_in(gas_price=4 * GWEI)
    assert resolve_fees(w3, "legacy", None, None, None) == Fees.legacy(4 * GWEI)
    assert w3.calls == ["gas_price"]


@pytest.mark.unit
def test_eip1559_from_fee_history_skips_empty_blocks():
    blocks = [(0.0, 0), (0.5, 3 * GWEI), (0.1, 5 * GWEI), (0.0, 0), (0.3, 4 * GWEI), (0.9, 1 * GWEI)]
    w3 = stand_in(base_fee=6 * GWEI, history=history(7 * GWEI, blocks))
    fees = resolve_fees(w3, "eip1559", None, None, None)
    # the lower middle of 1, 3, 4, 5 gwei; the next block's base fee is 7 gwei
    assert fees == Fees.eip1559(max_fee=2 * 7 * GWEI + 3 * GWEI, priority_fee=3 * GWEI)
    assert "eth_feeHistory['0xa', 'latest', [50]]" in w3.calls
    assert "eth_maxPriorityFeePerGas[]" not in w3.calls


@pytest.mark.unit
def test_eip1559_on_an_idle_chain_takes_the_nodes_priority_fee():
    w3 = stand_in(base_fee=GWEI, history=history(GWEI // 2, [(0.0, 0)] * 10), priority=2 * GWEI)
    assert resolve_fees(w3, "eip1559", None, None, None) == Fees.eip1559(max_fee=GWEI + 2 * GWEI, priority_fee=2 * GWEI)


@pytest.mark.unit
def test_eip1559_without_fee_history_uses_the_heads_base_fee():
    w3 = stand_in(base_fee=5 * GWEI, history=None, priority=GWEI)
    assert resolve_fees(w3, "eip1559", None, None, None) == Fees.eip1559(max_fee=11 * GWEI, priority_fee=GWEI)


@pytest.mark.unit
def test_eip1559_given_fees_are_kept():
    w3 = stand_in(base_fee=5 * GWEI, history=history(5 * GWEI, [(0.5, 9 * GWEI)]))
    assert resolve_fees(w3, "eip1559", None, 50 * GWEI, 0) == Fees.eip1559(max_fee=50 * GWEI, priority_fee=0)
    assert "eth_maxPriorityFeePerGas[]" not in w3.calls


@pytest.mark.unit
def test_eip1559_given_priority_fee_sets_the_max_fee():
    w3 = stand_in(base_fee=5 * GWEI, history=history(4 * GWEI, [(0.5, 9 * GWEI)]))
    assert resolve_fees(w3, "eip1559", None, None, GWEI) == Fees.eip1559(max_fee=9 * GWEI, priority_fee=GWEI)


@pytest.mark.unit
def test_eip1559_given_max_fee_caps_the_derived_priority_fee():
    w3 = stand_in(base_fee=GWEI, history=history(GWEI, [(0.5, 9 * GWEI)]))
    assert resolve_fees(w3, "eip1559", None, 2 * GWEI, None) == Fees.eip1559(max_fee=2 * GWEI, priority_fee=2 * GWEI)


@pytest.mark.unit
def test_eip1559_on_a_chain_without_base_fee_says_use_legacy():
    with pytest.raises(ConfigError, match="tx_type: legacy") as caught:
        resolve_fees(stand_in(base_fee=None), "eip1559", None, 10 * GWEI, GWEI)
    assert caught.value.field == "chain.tx_type"


@pytest.mark.unit
def test_eip1559_with_a_zero_base_fee_is_fine():
    w3 = stand_in(base_fee=0, history=history(0, [(0.5, 0)] * 3))
    assert resolve_fees(w3, "eip1559", None, None, None) == Fees.eip1559(max_fee=0, priority_fee=0)


@pytest.mark.parametrize(
    ("args", "field", "says"),
    [
        (("eip4844", None, None, None), "chain.tx_type", "not a transaction type"),
        (("legacy", None, GWEI, None), "chain.max_fee", "eip1559 only"),
        (("legacy", 1, None, 0), "chain.priority_fee", "eip1559 only"),
        (("eip1559", 1, None, None), "chain.gas_price", "legacy only"),
        (("eip1559", None, GWEI, 2 * GWEI), "chain.priority_fee", "above chain.max_fee"),
        (("eip1559", None, -1, None), "chain.max_fee", "negative"),
        (("legacy", -1, None, None), "chain.gas_price", "negative"),
    ],
)
@pytest.mark.unit
def test_configurations_that_cannot_work_are_refused_before_asking(args, field, says):
    with pytest.raises(ConfigError, match=says) as caught:
        resolve_fees(NoNode(), *args)
    assert caught.value.field == field


@pytest.mark.unit
def test_a_max_fee_below_the_base_fee_is_refused():
    w3 = stand_in(base_fee=10 * GWEI, history=history(11 * GWEI, [(0.5, GWEI)]))
    with pytest.raises(ConfigError, match=r"below the next block's base fee \(11000000000\)") as caught:
        resolve_fees(w3, "eip1559", None, 10 * GWEI, GWEI)
    assert caught.value.field == "chain.max_fee"


# --- on real nodes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_fee_chain():
    with Devnet(DevnetSettings(block_time_s=0, gas_price=GWEI)) as node:
        yield connect(node.url)


@pytest.fixture(scope="module")
def berlin_chain():
    with Devnet(DevnetSettings(block_time_s=0, hardfork="berlin")) as node:
        yield connect(node.url)


def dev_signer(index: int) -> Signer:
    return Signer(bytes(derive_account(MnemonicSource("devnet", DEV_MNEMONIC), index).key), DEFAULT_CHAIN_ID)


def send(w3, signed):
    w3.eth.send_raw_transaction(signed.raw)
    return w3.eth.wait_for_transaction_receipt(signed.tx_hash, timeout=10)


@pytest.mark.chain
def test_anvil_fees_from_history_get_a_type_2_transaction_mined(base_fee_chain):
    w3 = base_fee_chain
    idle = resolve_fees(node_of(w3), "eip1559", None, None, None)
    next_base_fee = w3.eth.fee_history(1, "latest", [])["baseFeePerGas"][-1]
    assert next_base_fee > 0
    assert idle.priority_fee == w3.eth.max_priority_fee  # no block has used gas yet
    assert idle.max_fee == 2 * next_base_fee + idle.priority_fee

    tipper = dev_signer(2)
    for nonce in range(3):
        tip = Fees.eip1559(max_fee=10 * GWEI, priority_fee=3 * GWEI)
        assert send(w3, sign_with(tipper, tip, nonce=nonce, gas=21_000, to=TO, data=b""))["status"] == 1
    fees = resolve_fees(node_of(w3), "eip1559", None, None, None)
    next_base_fee = w3.eth.fee_history(1, "latest", [])["baseFeePerGas"][-1]
    assert fees.priority_fee == 3 * GWEI  # what the recent blocks paid, not the node's suggestion
    assert fees.max_fee == 2 * next_base_fee + 3 * GWEI
    assert fees.max_fee >= next_base_fee > 0

    sender = dev_signer(3)
    before = w3.eth.get_balance(w3.to_checksum_address(sender.address))
    receipt = send(w3, sign_with(sender, fees, nonce=0, gas=100_000, to=TO, data=bytes(range(256)) * 4))
    assert (receipt["type"], receipt["status"]) == (2, 1)
    block_base_fee = w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
    assert block_base_fee < receipt["effectiveGasPrice"] <= fees.max_fee
    assert receipt["effectiveGasPrice"] == block_base_fee + fees.priority_fee
    spent = before - w3.eth.get_balance(w3.to_checksum_address(sender.address))
    assert spent == receipt["gasUsed"] * receipt["effectiveGasPrice"] <= 100_000 * fees.worst_case_per_gas()


@pytest.mark.chain
def test_anvil_legacy_fees_are_the_nodes_gas_price(base_fee_chain):
    w3 = base_fee_chain
    fees = resolve_fees(node_of(w3), "legacy", None, None, None)
    assert fees == Fees.legacy(w3.eth.gas_price)
    receipt = send(w3, sign_with(dev_signer(4), fees, nonce=0, gas=21_000, to=TO, data=b""))
    assert (receipt["type"], receipt["status"]) == (0, 1)
    assert receipt["effectiveGasPrice"] == fees.gas_price


@pytest.mark.chain
def test_berlin_anvil_refuses_eip1559_and_takes_legacy(berlin_chain):
    w3 = berlin_chain
    with pytest.raises(ConfigError, match="use tx_type: legacy") as caught:
        resolve_fees(node_of(w3), "eip1559", None, None, None)
    assert caught.value.field == "chain.tx_type"
    with pytest.raises(ConfigError) as caught:
        resolve_fees(node_of(w3), "eip1559", None, 10 * GWEI, GWEI)
    assert caught.value.field == "chain.tx_type"

    signer = dev_signer(5)
    # the refusal is the node's rule too: it does not take a type-2 transaction
    with pytest.raises(Web3RPCError, match="EIP-1559 style fee params"):
        w3.eth.send_raw_transaction(signer.sign_1559(nonce=0, max_fee=10 * GWEI, priority_fee=GWEI, gas=21_000, to=TO, data=b"").raw)
    fees = resolve_fees(node_of(w3), "legacy", None, None, None)
    receipt = send(w3, sign_with(signer, fees, nonce=0, gas=21_000, to=TO, data=b""))
    assert (receipt["type"], receipt["status"]) == (0, 1)


@pytest.mark.chain
def test_geth_1_10_3_refuses_eip1559():
    """GoQuorum's base: Berlin, with neither a base fee nor eth_feeHistory."""
    with GethNetwork(GethNetworkSettings(nodes=1)) as net:
        w3 = connect(net.urls[0])
        with pytest.raises(ConfigError, match="use tx_type: legacy") as caught:
            resolve_fees(node_of(w3), "eip1559", None, None, None)
        assert caught.value.field == "chain.tx_type"
        assert resolve_fees(node_of(w3), "legacy", None, None, None) == Fees.legacy(w3.eth.gas_price)

"""The fast signer produces exactly eth-account's bytes, and a node takes what it signs."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from eth_account import Account

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEFAULT_CHAIN_ID, DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.chains.signer import Signer
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.workloads.fl_round.model import random_model


@pytest.mark.parametrize(
    ("nonce", "gas", "data_len", "chain_id"),
    [(0, 21_000, 0, 1337), (1, 800_000, 32_100, 1337), (127, 30_000_000, 55, 10), (128, 100_000, 56, 2**31), (2**40, 1, 1, 1)],
)
@pytest.mark.unit
def test_same_bytes_as_eth_account(nonce, gas, data_len, chain_id):
    key = os.urandom(32)
    to = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    data = random_model(data_len // 32 + 1, nonce % 1000)[:data_len]
    signer = Signer(key, chain_id)
    ours = signer.sign(nonce=nonce, gas_price=0, gas=gas, to=bytes.fromhex(to[2:]), data=data)
    theirs = Account.sign_transaction(
        {"nonce": nonce, "gasPrice": 0, "gas": gas, "to": to, "value": 0, "data": data, "chainId": chain_id}, key
    )
    assert ours.raw == bytes(theirs.raw_transaction)
    assert ours.tx_hash == bytes(theirs.hash)
    assert signer.address == Account.from_key(key).address.lower()


@pytest.mark.unit
def test_repr_hides_the_key():
    key = os.urandom(32)
    signer = Signer(key, 1337)
    assert key.hex() not in repr(signer)
    assert repr(signer) == f"Signer({signer.address})"


TO = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize(
    ("nonce", "max_fee", "priority_fee", "gas", "data_len", "chain_id", "value", "to"),
    [
        (0, 0, 0, 21_000, 0, 1337, 0, TO),
        (127, 10**9, 10**9, 30_000_000, 55, 10, 1, TO),
        (128, 2 * 10**9 + 1, 1, 100_000, 56, 2**31, 0, TO),
        (2**40, 2**256 - 1, 2**255, 1, 1, 2**64 - 1, 2**256 - 1, TO),
        (1, 300 * 10**9, 2 * 10**9, 800_000, 32_100, 1337, 0, TO),
        (5, 10**9, 0, 1_000_000, 32_768, 1, 0, ""),  # contract creation
    ],
)
@pytest.mark.unit
def test_1559_same_bytes_as_eth_account(nonce, max_fee, priority_fee, gas, data_len, chain_id, value, to):
    key = os.urandom(32)
    data = random_model(data_len // 32 + 1, nonce % 1000)[:data_len]
    signer = Signer(key, chain_id)
    ours = signer.sign_1559(
        nonce=nonce, max_fee=max_fee, priority_fee=priority_fee, gas=gas, to=bytes.fromhex(to[2:]), data=data, value=value
    )
    tx = {
        "type": 2,
        "nonce": nonce,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority_fee,
        "gas": gas,
        "value": value,
        "data": data,
        "chainId": chain_id,
    }
    theirs = Account.sign_transaction(tx | ({"to": to} if to else {}), key)
    assert ours.raw == bytes(theirs.raw_transaction)
    assert ours.tx_hash == bytes(theirs.hash)
    assert ours.size == len(ours.raw)
    assert ours.nonce == nonce


@pytest.mark.unit
def test_legacy_contract_creation_same_bytes_as_eth_account():
    key = os.urandom(32)
    data = random_model(2, 3)
    ours = Signer(key, 1337).sign(nonce=3, gas_price=7, gas=500_000, to=b"", data=data)
    theirs = Account.sign_transaction({"nonce": 3, "gasPrice": 7, "gas": 500_000, "value": 0, "data": data, "chainId": 1337}, key)
    assert ours.raw == bytes(theirs.raw_transaction)


BASE_FEE = 10**9


@pytest.fixture(scope="module")
def base_fee_chain():
    """Anvil charging a base fee, so that a type-2 transaction's fee fields are checked, not ignored."""
    with Devnet(DevnetSettings(block_time_s=0, gas_price=BASE_FEE)) as node:
        yield connect(node.url)


@pytest.mark.chain
def test_anvil_mines_a_type_2_transaction_signed_here(base_fee_chain):
    w3 = base_fee_chain
    account = derive_account(MnemonicSource("devnet", DEV_MNEMONIC), 1)
    signer = Signer(bytes(account.key), DEFAULT_CHAIN_ID)
    base_fee = w3.eth.get_block("pending")["baseFeePerGas"]
    assert base_fee > 0
    nonce = w3.eth.get_transaction_count(account.address)
    data = random_model(1000, 1)  # a 32 kB chunk's calldata, sent to an account that has no code
    max_fee, priority_fee = 3 * base_fee, 2 * 10**9
    signed = signer.sign_1559(
        nonce=nonce, max_fee=max_fee, priority_fee=priority_fee, gas=1_000_000, to=bytes.fromhex(TO[2:]), data=data, value=12_345
    )
    with urllib.request.urlopen(urllib.request.Request(w3.provider.endpoint_uri, signed.body, {"Content-Type": "application/json"})) as r:
        answer = json.load(r)
    assert answer.get("result") == "0x" + signed.tx_hash.hex(), answer

    receipt = w3.eth.wait_for_transaction_receipt(signed.tx_hash, timeout=10)
    assert receipt["type"] == 2
    assert receipt["status"] == 1
    assert receipt["from"].lower() == signer.address
    block_base_fee = w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"]
    assert receipt["effectiveGasPrice"] == min(max_fee, block_base_fee + priority_fee)
    tx = w3.eth.get_transaction(signed.tx_hash)
    assert (tx["maxFeePerGas"], tx["maxPriorityFeePerGas"], tx["value"], bytes(tx["input"])) == (max_fee, priority_fee, 12_345, data)

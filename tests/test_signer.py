"""The fast signer produces exactly eth-account's bytes."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from actors.signer import Signer
from loadgen.model import random_model


@pytest.mark.parametrize(
    ("nonce", "gas", "data_len", "chain_id"),
    [(0, 21_000, 0, 1337), (1, 800_000, 32_100, 1337), (127, 30_000_000, 55, 10), (128, 100_000, 56, 2**31), (2**40, 1, 1, 1)],
)
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


def test_repr_hides_the_key():
    key = os.urandom(32)
    signer = Signer(key, 1337)
    assert key.hex() not in repr(signer)
    assert repr(signer) == f"Signer({signer.address})"

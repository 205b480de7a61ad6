"""Contracts' side of the driver: a web3 connection, and a coordinator's transaction built,
sent and waited for in web3's form (its receipt's events are read through the contract's ABI).

This is the slow, careful path used to deploy contracts and run a round's coordinator steps;
what a run needs without a contract (probe, fees, funding, pools) is ``node.Node``, and the
workers' sending path lives in ``actors/``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import URI
from web3 import HTTPProvider, Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint, TxParams, TxReceipt

from loadgen.chains.node import Node

if TYPE_CHECKING:
    from hexbytes import HexBytes

    from loadgen.chains.fees import Fees


class FailoverProvider(HTTPProvider):
    """The driver's connection to a chain of several endpoints: the first of them that takes
    the connection, from the last one that did. A node that refuses connections (it died) does
    not stop the coordinator's steps while others answer."""

    def __init__(self, urls: list[str], timeout_s: float) -> None:
        super().__init__(urls[0], request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None)
        self.urls = urls

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        for _ in range(len(self.urls) - 1):
            try:
                return super()._make_request(method, request_data)
            except requests.ConnectionError:
                following = self.urls[(self.urls.index(str(self.endpoint_uri)) + 1) % len(self.urls)]
                self.endpoint_uri = URI(following)
        return super()._make_request(method, request_data)


def connect(url: str | list[str], timeout_s: float = 30.0) -> Web3:
    """A connection to ``url``, or to the first of several that answers (FailoverProvider)."""
    provider = FailoverProvider(url, timeout_s) if isinstance(url, list) else HTTPProvider(url, request_kwargs={"timeout": timeout_s})
    w3 = Web3(provider)
    # IBFT/QBFT headers carry a long extraData that web3 rejects without this.
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def _url(w3: Web3) -> str:
    """The URL of a connection made by ``connect``."""
    assert isinstance(w3.provider, HTTPProvider)
    return str(w3.provider.endpoint_uri)


@lru_cache(maxsize=64)
def chain_id_of(w3: Web3) -> int:
    """A node's chain id never changes: asked once per connection, not once per transaction."""
    return w3.eth.chain_id


def fee_fields(fees: Fees | None) -> dict:
    """eth-account's fields for ``fees`` (None: a gas-free legacy transaction)."""
    if fees is None:
        return {"gasPrice": 0}
    if fees.tx_type == "legacy":
        return {"gasPrice": fees.gas_price}
    return {"type": 2, "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.priority_fee}


def build_transaction(
    w3: Web3,
    account: LocalAccount,
    *,
    to: str | None,
    data: bytes,
    nonce: int,
    gas: int | None = None,
    fees: Fees | None = None,
    value: int = 0,
) -> bytes:
    """A signed transaction (legacy EIP-155, or type 2 by ``fees``), ready for eth_sendRawTransaction.

    With ``gas`` None the node estimates it, which fails early on a call that would revert.
    """
    tx = {"chainId": chain_id_of(w3), "nonce": nonce, "data": data, "value": value} | fee_fields(fees)
    if to is not None:
        tx["to"] = to
    if gas is None:
        # the keys are TxParams' (the checker cannot follow the merged dicts)
        gas = w3.eth.estimate_gas(cast(TxParams, {k: v for k, v in tx.items() if k != "nonce"} | {"from": account.address}))
    return account.sign_transaction(tx | {"gas": gas}).raw_transaction


@lru_cache(maxsize=64)
def _node(w3: Web3) -> Node:
    """The same endpoints as a connection made by ``connect``, for what web3 adds nothing to:
    one per connection, kept alive like web3's own (a round's coordinator sends several)."""
    return Node(getattr(w3.provider, "urls", None) or _url(w3))


def wait_receipts(w3: Web3, tx_hashes: list[HexBytes], timeout_s: float = 60.0) -> list[TxReceipt]:
    """The receipts in web3's form, which a contract's events are read from."""
    _node(w3).wait_receipts(["0x" + bytes(h).hex() for h in tx_hashes], timeout_s)
    return [w3.eth.get_transaction_receipt(h) for h in tx_hashes]


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    *,
    to: str | None,
    data: bytes,
    gas: int | None = None,
    fees: Fees | None = None,
    nonce: int | None = None,
    value: int = 0,
    timeout_s: float = 60.0,
) -> TxReceipt:
    """Sends one transaction and waits for its receipt (the nonce from the node when not given)."""
    if nonce is None:
        nonce = w3.eth.get_transaction_count(account.address, "pending")
    raw = build_transaction(w3, account, to=to, data=data, nonce=nonce, gas=gas, fees=fees, value=value)
    return wait_receipts(w3, [submit(w3, raw)], timeout_s)[0]


def submit(w3: Web3, raw: bytes, timeout_s: float = 60.0) -> HexBytes:
    """Sends one of loadgen's own transactions (``Node.submit``: again while a pool is full)."""
    from hexbytes import HexBytes

    return HexBytes(_node(w3).submit(raw, timeout_s))

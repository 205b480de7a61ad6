"""The driver's view of a chain: probe a node, send a transaction and wait for it.

This is the slow, careful path used to deploy contracts and run a round's coordinator steps;
the workers' sending path lives in ``actors/`` and does not go through web3.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import URI
from web3 import HTTPProvider, Web3
from web3.exceptions import TimeExhausted, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint, TxParams, TxReceipt

from loadgen.common.errors import ChainStalled, UserError

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress
    from hexbytes import HexBytes

    from loadgen.chains.fees import Fees


@dataclass(frozen=True)
class ChainInfo:
    chain_id: int
    gas_price: int
    client_version: str
    block_gas_limit: int
    head: int
    # a clique network (its signers seal in turn, and fork when one is late): blocks near the
    # head may still be replaced
    clique: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


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


def probe(w3: Web3) -> ChainInfo:
    try:
        block = w3.eth.get_block("latest")
        return ChainInfo(
            chain_id=w3.eth.chain_id,
            gas_price=w3.eth.gas_price,
            client_version=w3.client_version,
            block_gas_limit=block["gasLimit"],
            head=block["number"],
            clique=block.get("difficulty") in (1, 2) and int(block.get("miner", "0x0"), 16) == 0,
        )
    except requests.ConnectionError as e:
        why = "connection refused" if "refused" in str(e).lower() else type(e).__name__
        raise UserError(f"no answer from {_url(w3)} ({why}): is the node running, and is the URL right?") from None
    except requests.Timeout:
        raise UserError(f"no answer from {_url(w3)} in time: the node is up but does not answer (overloaded or stalled?)") from None
    except Exception as e:  # any other failure here means "this is not a usable node"
        raise UserError(f"cannot talk to the node at {_url(w3)}: {not_json_rpc(_url(w3)) or e}") from None


def not_json_rpc(url: str) -> str | None:
    """What ``url`` answers a JSON-RPC call with when it is not JSON (a proxy's or a web
    server's page): its HTTP status and the first characters of the body; None when it is JSON."""
    try:
        answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=5)
        answer.json()
    except requests.JSONDecodeError:
        head = " ".join(answer.text.split())[:80]
        kind = answer.headers.get("Content-Type", "no content type")
        return f"it answers HTTP {answer.status_code} ({kind}) with something that is not JSON-RPC: {head!r}; is this the node's RPC URL?"
    except requests.RequestException:
        return None
    return None


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


def wait_receipts(w3: Web3, tx_hashes: list[HexBytes], timeout_s: float = 60.0) -> list[TxReceipt]:
    try:
        return [w3.eth.wait_for_transaction_receipt(h, timeout=timeout_s, poll_latency=0.05) for h in tx_hashes]
    except TimeExhausted as e:
        # the driver's own steps (deploy, open/close a round, funding) wait for their block: when
        # one never comes, the network has stalled or is drowning, and the run cannot go on
        raise ChainStalled(
            f"{_url(w3)} did not include a transaction of the coordinator within {timeout_s:g}s "
            f"({e.args[0].split(' is not')[0] if e.args else ''}): the network is stalled or overloaded; "
            "look at its nodes, or lower the load"
        ) from None


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


def _pool_full(e: Web3RPCError) -> str | None:
    """The node's words when it refused a transaction for a full pool."""
    error = (e.rpc_response or {}).get("error")
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    # not "replacement transaction underpriced": that one is about a nonce, and waiting cannot help it
    return message if message == "transaction underpriced" or message.startswith("txpool is full") else None


def submit(w3: Web3, raw: bytes, timeout_s: float = 60.0) -> HexBytes:
    """Sends one of loadgen's own transactions (funding, the coordinator's). A node whose pool is
    full refuses it like any remote transaction that pays no more than the cheapest one there,
    until blocks take the pending ones (what a heavy trial left behind): it is offered again
    until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return w3.eth.send_raw_transaction(raw)
        except Web3RPCError as e:
            refusal = _pool_full(e)
            if refusal is None:
                raise
            if time.monotonic() > deadline:
                raise ChainStalled(
                    f"{_url(w3)} refused loadgen's own transactions (funding, the coordinator's) for {timeout_s:g}s "
                    f"({refusal}): its pool stays full; wait for the network to drain, or raise its txpool slots"
                ) from None
            time.sleep(0.5)


@dataclass(frozen=True)
class Funding:
    funder: str
    topped_up: int
    wei_each: int

    def to_dict(self) -> dict:
        return asdict(self)


def fund(w3: Web3, funder: LocalAccount, addresses: list[str], wei_each: int, fees: Fees, batch: int = 200) -> Funding:
    """Tops every address up to ``wei_each``: the transfers of a batch go out back to back with
    consecutive nonces, then the batch's receipts are awaited."""
    # the fleet hands the workers' addresses over checksummed
    balances = [w3.eth.get_balance(cast("ChecksumAddress", a)) for a in addresses]
    short = [(a, wei_each - b) for a, b in zip(addresses, balances, strict=True) if b < wei_each]
    need = sum(v for _, v in short) + 21_000 * fees.worst_case_per_gas() * len(short)
    if short and w3.eth.get_balance(funder.address) < need:
        raise UserError(
            f"the funder {funder.address} (key index 0) holds too little to top up {len(short)} workers "
            f"({need} wei needed): fund it, or run the network at gas price 0"
        )
    nonce: int = w3.eth.get_transaction_count(funder.address, "pending")
    chain_id = chain_id_of(w3)
    for i in range(0, len(short), batch):
        hashes = []
        for address, value in short[i : i + batch]:
            tx = {"chainId": chain_id, "nonce": nonce, "gas": 21_000, "to": address, "value": value} | fee_fields(fees)
            hashes.append(submit(w3, funder.sign_transaction(tx).raw_transaction))
            nonce += 1
        failed = [r for r in wait_receipts(w3, hashes, timeout_s=120) if r["status"] != 1]
        if failed:
            raise UserError(f"{len(failed)} funding transfers failed, first {failed[0]['transactionHash'].hex()}")
    return Funding(funder.address, len(short), wei_each)

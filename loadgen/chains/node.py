"""The driver's JSON-RPC client: a keep-alive HTTP connection to the first of a chain's
endpoints that takes it, moving to the next when one refuses connections (a node that died does
not stop the run's own steps while others answer).

The driver's calls are few (probe, fees, funding, a phase's pre-flight, the pools every second),
but through web3 each cost about 4 ms of CPU (requests reads the whole environment for proxies
on every call) and importing web3 and eth-account costs a run half a CPU-second. Contract
workloads still use web3 for their ABI (``chain.connect``); everything a transfer run needs is
here, on the standard library.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from loadgen.common.errors import ChainStalled


class RpcError(Exception):
    """The node answered with a JSON-RPC error; ``message`` is its own words."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class NotJsonRpc(Exception):
    """Something answered that is not a JSON-RPC node (a proxy's or a web server's page)."""


class Unreachable(OSError):
    """No endpoint took the connection."""


class Node:
    def __init__(self, urls: str | list[str], timeout_s: float = 30.0) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.url = self.urls[0]
        self.timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, *params: Any) -> Any:
        answer = self._exchange(orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}))
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise NotJsonRpc("it answers with JSON that is not a JSON-RPC answer; is this the node's RPC URL?")
        if (error := answer.get("error")) is not None:
            if isinstance(error, dict):
                raise RpcError(int(error.get("code", 0)), str(error.get("message", error)), error.get("data"))
            raise RpcError(0, str(error))
        return answer["result"]

    def batch(self, method: str, params: list[list[Any]]) -> list[Any]:
        """Many calls of ``method`` in one request: their results in order, None where the node
        answered one with an error or not at all."""
        answer = self._exchange(orjson.dumps([{"jsonrpc": "2.0", "id": j, "method": method, "params": p} for j, p in enumerate(params)]))
        by_id = {a.get("id"): a.get("result") for a in answer if isinstance(a, dict)} if isinstance(answer, list) else {}
        return [by_id.get(j) for j in range(len(params))]

    def _exchange(self, body: bytes) -> Any:
        """The node's parsed answer to ``body``, from the first endpoint that takes the connection."""
        for _ in range(len(self.urls) - 1):
            try:
                return self._parsed(self._post(body))
            except ConnectionRefusedError:
                self.close()
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
        try:
            return self._parsed(self._post(body))
        except ConnectionRefusedError:
            self.close()
            raise Unreachable(f"no answer from {self.url} (connection refused)") from None

    def _post(self, body: bytes) -> http.client.HTTPResponse:
        reused = self._connection is not None
        try:
            return self._send(body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            if not reused:
                raise
            # a keep-alive connection the node closed while it sat idle: once more on a new one
            return self._send(body)

    def _send(self, body: bytes) -> http.client.HTTPResponse:
        parts = urlsplit(self.url)
        if self._connection is None:
            kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            self._connection = kind(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json"}
        if parts.username:
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = f"Basic {base64.b64encode(user.encode()).decode()}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection.request("POST", path, body, headers)
        return self._connection.getresponse()

    def _parsed(self, response: http.client.HTTPResponse) -> Any:
        payload = response.read()
        if response.will_close:
            self.close()
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            head = " ".join(payload.decode(errors="replace").split())[:80]
            kind = response.getheader("Content-Type", "no content type")
            raise NotJsonRpc(
                f"it answers HTTP {response.status} ({kind}) with something that is not JSON-RPC: {head!r}; is this the node's RPC URL?"
            ) from None

    # the calls the driver makes, with their answers decoded

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def gas_price(self) -> int:
        return int(self.call("eth_gasPrice"), 16)

    def block(self, tag: str = "latest") -> dict[str, Any]:
        return self.call("eth_getBlockByNumber", tag, False)

    def balance(self, address: str) -> int:
        return int(self.call("eth_getBalance", address, "latest"), 16)

    def pending_nonce(self, address: str) -> int:
        return int(self.call("eth_getTransactionCount", address, "pending"), 16)

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.call("eth_getTransactionReceipt", tx_hash)

    def submit(self, raw: bytes, timeout_s: float = 60.0) -> str:
        """Sends one of loadgen's own transactions (funding, the coordinator's); its hash. A
        node whose pool is full refuses it like any remote transaction that pays no more than
        the cheapest one there, until blocks take the pending ones (what a heavy trial left
        behind): it is offered again until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.call("eth_sendRawTransaction", "0x" + raw.hex())
            except RpcError as e:
                if not pool_full(e.message):
                    raise
                if time.monotonic() > deadline:
                    raise ChainStalled(
                        f"{self.url} refused loadgen's own transactions (funding, the coordinator's) for {timeout_s:g}s "
                        f"({e.message}): its pool stays full; wait for the network to drain, or raise its txpool slots"
                    ) from None
                time.sleep(0.5)

    def wait_receipts(self, tx_hashes: list[str], timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """The transactions' receipts, once each is in a block."""
        deadline = time.monotonic() + timeout_s
        receipts: list[dict[str, Any]] = []
        for tx_hash in tx_hashes:
            while (receipt := self.receipt(tx_hash)) is None:
                if time.monotonic() > deadline:
                    # the driver's own steps (deploy, open/close a round, funding) wait for their
                    # block: when one never comes, the network has stalled or is drowning
                    raise ChainStalled(
                        f"{self.url} did not include a transaction of the coordinator within {timeout_s:g}s ({tx_hash}): "
                        "the network is stalled or overloaded; look at its nodes, or lower the load"
                    )
                time.sleep(0.05)
            receipts.append(receipt)
        return receipts


def pool_full(message: str) -> bool:
    """Whether a node's refusal says its pool is full; not "replacement transaction underpriced":
    that one is about a nonce, and waiting cannot help it."""
    return message == "transaction underpriced" or message.startswith("txpool is full")

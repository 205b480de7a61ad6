"""JSON-RPC over HTTP for the sending path and the block watcher.

Request bodies for eth_sendRawTransaction are built as bytes once per transaction; responses
are parsed with orjson. A JSON-RPC error inside an HTTP 200 is an error like any other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from actors.http import Broken, HttpPool, NotSent
from loadgen.chains.signer import SEND_ID

# Answers meaning the node already has this very transaction: accepted after all.
ALREADY_THERE = ("already known", "known transaction", "already imported", "nonce too low")
LOOKUP_BATCH = 200  # calls in one batch: geth refuses batches of more than 1,000 and answers of more than 25 MB

T = TypeVar("T")


class RpcError(Exception):
    def __init__(self, kind: str, message: str, unhealthy: bool = False, maybe_delivered: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # "http", "connection", "timeout", "rpc"
        self.message = message
        # says something about the endpoint rather than the request: no connection, no answer
        # in time, HTTP 429 or 5xx, an answer that is not JSON-RPC
        self.unhealthy = unhealthy
        # the request went out and its answer was lost or garbled: the node may have acted on it
        self.maybe_delivered = maybe_delivered


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    result: str  # the hash the node returned, or the error text
    kind: str = ""  # error kind when not ok
    maybe_delivered: bool = False  # not ok, but the node may have the transaction all the same


class RpcClient:
    """One endpoint, one keep-alive connection pool, many concurrent requests.

    Every request tells the client how the endpoint is doing: ``failures`` counts the unhealthy
    answers since the last healthy one (a JSON-RPC error is a healthy answer: the node works).
    """

    def __init__(self, url: str, timeout_s: float = 10.0, connections: int = 64) -> None:
        self.url = url
        self.failures = 0
        self.last_failure = ""
        self._timeout_s = timeout_s
        self._connections = connections
        self._pool: HttpPool | None = None
        self._free: asyncio.Semaphore | None = None  # sends waiting here have not left yet
        self._ids = itertools.count(1)

    @property
    def pool(self) -> HttpPool:
        if self._pool is None:
            self._pool = HttpPool(self.url, self._connections)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def _post(self, body: bytes, unpack: Callable[[Any], T]) -> T:
        """The answer to ``body``, unpacked; the endpoint's health follows what came back."""
        try:
            out = unpack(await self._exchange(body))
        except RpcError as e:
            if e.unhealthy:
                self.failures += 1
                self.last_failure = str(e)
            else:  # the node answered (with an error): it works
                self.failures = 0
            raise
        self.failures = 0
        return out

    async def _exchange(self, body: bytes) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                status, payload = await self.pool.post(body)
        except TimeoutError:
            raise RpcError("timeout", f"no answer from {self.url}", unhealthy=True, maybe_delivered=True) from None
        except NotSent as e:  # no connection: the request never left
            raise RpcError("connection", str(e), unhealthy=True) from None
        except Broken as e:
            raise RpcError("connection", str(e), unhealthy=True, maybe_delivered=True) from None
        if status != 200:
            text = f"HTTP {status} {payload[:200].decode(errors='replace')}".strip()
            raise RpcError("http", text, unhealthy=status >= 500 or status == 429)
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RpcError("http", f"not JSON: {payload[:200]!r}", unhealthy=True, maybe_delivered=True) from None

    @staticmethod
    def _result(answer: Any, request_id: int) -> Any:
        """A JSON-RPC answer's result; its error (whatever its shape) as an RpcError; anything
        that is not an answer to this request as an unhealthy one."""
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            raise RpcError("rpc", f"not a JSON-RPC answer: {answer!r:.200}", unhealthy=True, maybe_delivered=True)
        if answer.get("id") != request_id:
            raise RpcError("rpc", f"answer for request id {answer.get('id')!r:.40}, not {request_id}", unhealthy=True, maybe_delivered=True)
        if answer.get("error") is not None:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise RpcError("rpc", str(message) if message else f"error {error!r:.200}")
        return answer.get("result")

    async def call(self, method: str, params: list | None = None) -> Any:
        request_id = next(self._ids)
        body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or []})
        return await self._post(body, lambda answer: self._result(answer, request_id))

    async def query(self, graphql: str) -> dict[str, Any]:
        """A GraphQL query's data, for a client made with the node's GraphQL address (geth and
        GoQuorum serve it at /graphql of the HTTP port with ``--graphql``); its errors as an
        RpcError."""

        def unpack(answer: Any) -> dict[str, Any]:
            if not isinstance(answer, dict):
                raise RpcError("rpc", f"not a GraphQL answer: {answer!r:.200}", unhealthy=True)
            if answer.get("errors"):
                raise RpcError("rpc", f"GraphQL: {answer['errors']!r:.200}")
            data = answer.get("data")
            if not isinstance(data, dict):
                raise RpcError("rpc", f"GraphQL answered no data: {answer!r:.200}", unhealthy=True)
            return data

        return await self._post(orjson.dumps({"query": graphql}), unpack)

    async def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Results in call order; an element is an RpcError where that call failed."""
        if not calls:
            return []
        first = next(self._ids)
        body = orjson.dumps([{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
        for _ in range(len(calls) - 1):
            next(self._ids)

        def unpack(answers: Any) -> list[Any]:
            if not isinstance(answers, list):
                raise RpcError("rpc", f"batch answered with {answers!r:.200}", unhealthy=True)
            by_id = {a["id"]: a for a in answers if isinstance(a, dict) and isinstance(a.get("id"), int)}
            out: list[Any] = []
            for i in range(len(calls)):
                try:
                    out.append(self._result(by_id.get(first + i), first + i))
                except RpcError as e:
                    out.append(e)
            return out

        return await self._post(body, unpack)

    async def send_raw(self, body: bytes, on_sent: Callable[[], None] | None = None) -> SendResult:
        """``on_sent`` is called when the request has a connection to go out on: a send that had
        to wait for one is late, and the caller's clock must say so. ``body`` is a request built
        by ``send_raw_body`` (its id is SEND_ID)."""
        if self._free is None:
            self._free = asyncio.Semaphore(self._connections)
        async with self._free:
            if on_sent is not None:
                on_sent()
            try:
                result = await self._post(body, lambda answer: self._result(answer, SEND_ID))
            except RpcError as e:
                return SendResult(False, e.message, e.kind, e.maybe_delivered)
        return SendResult(True, result if isinstance(result, str) else str(result))

"""JSON-RPC over HTTP for the sending path and the block watcher.

Request bodies for eth_sendRawTransaction are built as bytes once per transaction; responses
are parsed with orjson. A JSON-RPC error inside an HTTP 200 is an error like any other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson


class RpcError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # "http", "connection", "timeout", "rpc"
        self.message = message


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    result: str  # the hash the node returned, or the error text
    kind: str = ""  # error kind when not ok


class RpcClient:
    """One endpoint, one keep-alive connection pool, many concurrent requests."""

    def __init__(self, url: str, timeout_s: float = 10.0, connections: int = 64) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._free: asyncio.Semaphore | None = None  # sends waiting here have not left yet
        self._ids = itertools.count(1)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, body: bytes) -> Any:
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RpcError("http", f"HTTP {response.status} {payload[:200].decode(errors='replace')}".strip())
        except TimeoutError:
            raise RpcError("timeout", f"no answer from {self.url}") from None
        except aiohttp.ClientError as e:
            raise RpcError("connection", f"{type(e).__name__}: {e}") from None
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RpcError("http", f"not JSON: {payload[:200]!r}") from None

    @staticmethod
    def _result(answer: Any) -> Any:
        if not isinstance(answer, dict):
            raise RpcError("rpc", f"malformed answer {answer!r:.200}")
        if answer.get("error") is not None:
            error = answer["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise RpcError("rpc", message)
        return answer.get("result")

    async def call(self, method: str, params: list | None = None) -> Any:
        body = orjson.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []})
        return self._result(await self._post(body))

    async def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """Results in call order; an element is an RpcError where that call failed."""
        if not calls:
            return []
        first = next(self._ids)
        body = orjson.dumps([{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
        for _ in range(len(calls) - 1):
            next(self._ids)
        answers = await self._post(body)
        if not isinstance(answers, list):
            raise RpcError("rpc", f"batch answered with {answers!r:.200}")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        out: list[Any] = []
        for i in range(len(calls)):
            try:
                out.append(self._result(by_id.get(first + i)))
            except RpcError as e:
                out.append(e)
        return out

    async def send_raw(self, body: bytes, on_sent: Callable[[], None] | None = None) -> SendResult:
        """``on_sent`` is called when the request has a connection to go out on: a send that had
        to wait for one is late, and the caller's clock must say so."""
        if self._free is None:
            self._free = asyncio.Semaphore(self._connections)
        async with self._free:
            if on_sent is not None:
                on_sent()
            try:
                result = self._result(await self._post(body))
            except RpcError as e:
                return SendResult(False, e.message, e.kind)
        return SendResult(True, result if isinstance(result, str) else str(result))

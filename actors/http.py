"""A lean HTTP/1.1 client for JSON-RPC: POST a body, get the status and the body back, over a
pool of keep-alive connections.

A general client costs more per request than the rest of a send (aiohttp: request and response
objects, header multidicts, a payload writer, stream readers, about 60 µs of Python per
request). A JSON-RPC endpoint needs none of that: one fixed request head, and an answer with a
status line, a Content-Length or chunked body, and whether the connection stays open. Each
connection is an asyncio Protocol that parses what arrives in place.

Failures say whether the request may have reached the server: ``NotSent`` (no connection could
be made) or ``Broken`` (the connection failed after the request went out). A keep-alive
connection the server closed while it sat idle fails before any answer; that request is sent
again once on a new connection (a JSON-RPC node that got it twice answers the second as it
answered the first, or "already known" for a transaction).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import cast
from urllib.parse import unquote, urlsplit


class NotSent(Exception):
    """No connection: the request never left."""


class Broken(Exception):
    """The connection failed after the request went out: the server may have acted on it."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answered = False  # at least one response came back on it
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._got_bytes = False
        self._until_close = False  # a body without length ends when the server closes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._got_bytes = True
        if self._waiter is not None and not self._waiter.done():
            try:
                parsed = _parse(self._buffer, at_eof=False)
            except ValueError as e:
                self._fail(Broken(f"not an HTTP answer: {e}"))
                return
            if parsed is not None:
                status, body, keep, used = parsed
                del self._buffer[:used]
                self.answered = True
                self._waiter.set_result((status, body, keep))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        try:
            parsed = _parse(self._buffer, at_eof=True)
        except ValueError:
            parsed = None
        if parsed is not None:
            status, body, _, _ = parsed
            self._waiter.set_result((status, body, False))
        else:
            self._fail(Broken(f"connection closed {'mid-answer' if self._got_bytes else 'before an answer'}"))

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()

    @property
    def idle_and_lost(self) -> bool:
        """Closed without a word of an answer to the last request: a stale keep-alive."""
        return self.answered and not self._got_bytes

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        assert self.transport is not None
        if self.closed:  # the server closed it since it was picked: nothing was sent
            self._got_bytes = False
            raise Broken("connection closed before an answer")
        self._waiter = asyncio.get_running_loop().create_future()
        self._got_bytes = False
        self.transport.write(request)
        return await self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buffer: bytearray, at_eof: bool) -> tuple[int, bytes, bool, int] | None:
    """(status, body, keep-alive, bytes used) once a whole response is in ``buffer``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(repr(head[0][:80]))
    status = int(parts[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        # a chunked answer ends with an empty line (after the last chunk, or its trailers), and
        # JSON holds no bare CRLF: parse it once it can be whole, not at every read of a large one
        if not buffer.endswith(b"\r\n\r\n"):
            return None
        return _chunked(buffer, start, status, keep)
    length = headers.get("content-length")
    if length is not None:
        n = int(length)
        if len(buffer) - start < n:
            return None
        return status, bytes(buffer[start : start + n]), keep, start + n
    if at_eof:  # neither: the body runs to the end of the connection
        return status, bytes(buffer[start:]), False, len(buffer)
    return None


def _chunked(buffer: bytearray, at: int, status: int, keep: bool) -> tuple[int, bytes, bool, int] | None:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            return (status, bytes(body), keep, trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        at += size + 2


class HttpPool:
    """POSTs to one URL over at most ``connections`` keep-alive connections."""

    def __init__(self, url: str, connections: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        auth = ""
        if parts.username is not None:
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = f"Authorization: Basic {base64.b64encode(user.encode()).decode()}\r\n"
        self._head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: ".encode()
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self.closed = False
        self._slots = asyncio.Semaphore(connections)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        async with self._slots:
            for _ in range(2):
                conn = await self._connection()
                try:
                    status, answer, keep = await conn.exchange(request)
                except Broken:
                    self._all.discard(conn)
                    if conn.idle_and_lost and not self.closed:
                        continue  # the server had closed it while idle: this request never reached it
                    raise
                except BaseException:  # a timeout or a cancel mid-answer leaves the connection unusable
                    conn.close()
                    self._all.discard(conn)
                    raise
                if keep and not conn.closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                    self._all.discard(conn)
                return status, answer
            raise Broken("the server closed two connections in a row before answering")

    async def _connection(self) -> _Connection:
        if self.closed:
            raise NotSent("the client was closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._all.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self._ssl)
        except OSError as e:
            raise NotSent(f"cannot connect to {self.host}:{self.port} ({e.strerror or type(e).__name__})") from None
        self._all.add(conn)
        return conn

    def close(self) -> None:
        self.closed = True
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()

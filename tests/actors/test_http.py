"""The lean HTTP/1.1 client against real sockets on 127.0.0.1: servers that answer the ways HTTP
servers do (lengths, chunks, to the end of the connection, closing) and the ways they fail."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable

import pytest

from actors.http import Broken, HttpPool, NotSent
from loadgen.chains.devnet import free_port

pytestmark = pytest.mark.unit

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return head[0], headers, body


async def serve(handler: Handler, scenario: Callable[[str, dict], Awaitable[None]]) -> dict:
    """Runs ``scenario(url, state)`` against a server whose connections ``handler`` serves."""
    state: dict = {"connections": 0, "requests": []}

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        try:
            await handler(reader, writer, state)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connection, "127.0.0.1", port)
    async with server:
        await scenario(f"http://127.0.0.1:{port}/rpc?token=abc", state)
    return state


def run(handler: Handler, scenario: Callable[[str, dict], Awaitable[None]]) -> dict:
    return asyncio.run(serve(handler, scenario))


async def echo_with_length(reader, writer, state) -> None:
    while True:
        line, headers, body = await read_request(reader)
        state["requests"].append((line, headers, body))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


def test_answers_by_length_on_one_kept_alive_connection_with_path_query_and_auth():
    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url.replace("http://", "http://user:p%40ss@"))
        answers = [await pool.post(b'{"n":%d}' % i) for i in range(3)]
        pool.close()
        assert answers == [(200, b'{"n":%d}' % i) for i in range(3)]

    state = run(echo_with_length, scenario)
    assert state["connections"] == 1
    line, headers, _ = state["requests"][0]
    assert line == "POST /rpc?token=abc HTTP/1.1"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert headers["content-type"] == "application/json"


def test_a_chunked_answer_arriving_in_pieces():
    body = b'{"jsonrpc":"2.0","id":1,"result":"' + b"ab" * 5_000 + b'"}'

    async def chunked(reader, writer, state) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 777):
                piece = body[i : i + 777]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url)
        assert await pool.post(b"{}") == (200, body)
        assert await pool.post(b"{}") == (200, body)  # the same connection, parsed from where the last answer ended
        pool.close()

    assert run(chunked, scenario)["connections"] == 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\nbusy", (503, b"busy")),  # no length: the body ends with the connection
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", (200, b"ok")),  # told to close
    ],
)
def test_a_connection_whose_answer_ends_it_is_not_used_again(answer, expected):
    async def answer_then_linger(reader, writer, state) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.2)  # told to close, the client must not wait for the server to

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url)
        assert [await pool.post(b"{}") for _ in range(3)] == [expected] * 3
        pool.close()

    assert run(answer_then_linger, scenario)["connections"] == 3


def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once():
    async def once_then_close(reader, writer, state) -> None:
        _, _, body = await read_request(reader)
        state["requests"].append(body)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        # then the server's keep-alive timeout closes it (the client still counts it as open)

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url)
        assert await pool.post(b"1") == (200, b"1")
        await asyncio.sleep(0.1)
        assert await pool.post(b"2") == (200, b"2")
        pool.close()

    state = run(once_then_close, scenario)
    assert state["requests"] == [b"1", b"2"] and state["connections"] == 2


def test_a_reused_connection_closed_before_any_answer_is_tried_once_more_on_a_new_one():
    async def answer_once_then_hang_up(reader, writer, state) -> None:
        for n in range(2):
            _, _, body = await read_request(reader)
            state["requests"].append(body)
            if n == 0 and state["connections"] == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
            else:
                return  # the second request on the first connection gets no answer: the server hangs up

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url)
        assert await pool.post(b"1") == (200, b"1")
        with pytest.raises(Broken):  # the new connection hangs up too: a fresh one is not tried again
            await pool.post(b"2")
        pool.close()

    state = run(answer_once_then_hang_up, scenario)
    assert state["requests"] == [b"1", b"2", b"2"] and state["connections"] == 2


@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial',  # cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",  # a chunk cut short
        b"",  # closed without a word
        b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
    ],
)
def test_an_answer_cut_short_or_not_http_is_broken_and_may_have_been_delivered(answer):
    async def cut(reader, writer, state) -> None:
        _, _, body = await read_request(reader)
        state["requests"].append(body)
        writer.write(answer)
        await writer.drain()

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url)
        with pytest.raises(Broken):
            await pool.post(b"tx")
        pool.close()

    assert run(cut, scenario)["requests"] == [b"tx"]  # it reached the server: the caller must treat it as maybe sent


def test_nothing_listening_is_not_sent():
    async def scenario() -> None:
        pool = HttpPool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(NotSent, match=r"cannot connect to 127\.0\.0\.1"):
            await pool.post(b"{}")

    asyncio.run(scenario())


def test_at_most_the_pool_size_of_connections_carry_concurrent_requests():
    async def slow_echo(reader, writer, state) -> None:
        while True:
            _, _, body = await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async def scenario(url: str, state: dict) -> None:
        pool = HttpPool(url, connections=4)
        answers = await asyncio.gather(*(pool.post(b"%d" % i) for i in range(20)))
        pool.close()
        assert answers == [(200, b"%d" % i) for i in range(20)]

    assert run(slow_echo, scenario)["connections"] == 4


def test_not_an_http_url_is_refused():
    with pytest.raises(ValueError, match="not an http"):
        HttpPool("ws://127.0.0.1:8546")

"""A JSON-RPC proxy in front of a real node that injects faults into eth_sendRawTransaction.

Everything else is forwarded untouched, so the chain's behaviour stays the node's own. Used only
to make a real Anvil misbehave the way a loaded GoQuorum node does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import rlp
from aiohttp import ClientSession, web
from eth_account import Account
from eth_hash.auto import keccak

COORDINATOR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # dev account 0


@dataclass
class Faults:
    reject_every: int = 0  # answer every N-th send with a JSON-RPC error in an HTTP 200
    reject_message: str = "txpool is full"
    # refuse a transaction at most once (its re-send goes through): a periodic fault cannot then
    # line up with a periodic schedule and refuse the same transaction every time
    reject_once: bool = False
    refused: set[str] = field(default_factory=set)
    drop_every: int = 0  # answer every N-th send with its hash but never forward it (once per tx)
    drop_resends: bool = False  # with drop_every=1: the node loses every copy, a gap never fills
    delay_s: float = 0.0  # answer at once, forward after this long: slow inclusion
    delay_every: int = 1  # with delay_s: only every N-th send is late, so later ones overtake it
    exempt: set[str] = field(default_factory=lambda: {COORDINATOR})  # senders never faulted (the coordinator)
    hide_methods: set[str] = field(default_factory=set)  # answered "method not found", as older nodes do
    calls: Counter = field(default_factory=Counter)  # method → requests, batched ones included
    capacity_tps: float = 0.0  # accept at most this many sends a second (token bucket), refuse the rest
    answer_delay_s: float = 0.0  # forward at once, answer this much later (refusals too): a node slow to answer
    sends: int = 0
    rejected: int = 0
    dropped: set[str] = field(default_factory=set)
    arrivals: list[tuple[str, int]] = field(default_factory=list)  # (sender, nonce) of worker sends, as the node got them
    seen: set[str] = field(default_factory=set)
    # a broken or hostile node: from the first worker send on, requests of ``hostile_methods``
    # (every ``hostile_every``-th, in bursts of ``hostile_burst``) get the answer ``hostile`` names
    hostile: str = ""  # one of HOSTILE
    hostile_every: int = 0
    hostile_burst: int = 1
    hostile_methods: set[str] = field(default_factory=lambda: {"eth_sendRawTransaction"})
    hostile_seen: int = 0
    hostile_hits: int = 0


SLOW_S = 10.5  # beyond the senders' 10 s timeout
ODD_ERRORS = ("txpool is on fire", {"code": -32000}, [1, 2, 3], {"message": {"nested": True}}, {"code": "x", "message": ""})
HOSTILE = ("slow", "truncated", "not-json", "odd-error", "wrong-hash", "wrong-ids", "unknown-receipt", "http-429", "http-500", "http-503")


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream
        self.faults = faults
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._background: set[asyncio.Task] = set()
        self._tokens = 0.0
        self._refilled = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def kill(self) -> None:
        """The endpoint dies: its open connections close and new ones are refused."""
        asyncio.run_coroutine_threadsafe(self._listen_stop(), self._loop).result(10)

    def revive(self) -> None:
        """The endpoint answers again, on the same port."""
        asyncio.run_coroutine_threadsafe(self._listen(self.port or 0), self._loop).result(10)

    async def _start(self) -> None:
        self._session = ClientSession()
        await self._listen(0)

    async def _listen(self, port: int) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _listen_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stop(self) -> None:
        await self._listen_stop()
        await self._session.close()

    async def _forward(self, body: bytes) -> bytes:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("method") == "eth_sendRawTransaction" and not self._exempt(message):
            raw = message["params"][0]
            nonce = rlp.decode(bytes.fromhex(raw[2:]))[0]  # legacy transactions: the nonce comes first
            self.faults.arrivals.append((Account.recover_transaction(raw).lower(), int.from_bytes(nonce, "big")))
        async with self._session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}) as r:
            return await r.read()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        message = json.loads(body)
        for m in message if isinstance(message, list) else [message]:
            self.faults.calls[m.get("method")] += 1
        if self._hostile_now(message):
            return await self._hostile(message, body)
        if isinstance(message, dict) and message.get("method") in self.faults.hide_methods:
            error = {"code": -32601, "message": f"the method {message['method']} does not exist/is not available"}
            return web.json_response({"jsonrpc": "2.0", "id": message["id"], "error": error})
        if isinstance(message, dict) and message.get("method") == "eth_sendRawTransaction":
            answer = self._inject(message, body)
            forwarded = json.dumps(answer).encode() if answer is not None else await self._forward(body)
            if self.faults.answer_delay_s and not self._exempt(message):
                await asyncio.sleep(self.faults.answer_delay_s)
            return web.Response(body=forwarded, content_type="application/json")
        return web.Response(body=await self._forward(body), content_type="application/json")

    def _hostile_now(self, message: dict | list) -> bool:
        f = self.faults
        method = (message[0] if isinstance(message, list) and message else message).get("method")
        if not f.hostile or f.sends == 0 or method not in f.hostile_methods:
            return False
        if isinstance(message, dict) and method == "eth_sendRawTransaction" and self._exempt(message):
            return False
        f.hostile_seen += 1
        hit = (f.hostile_seen - 1) % f.hostile_every < f.hostile_burst
        f.hostile_hits += hit
        return hit

    async def _hostile(self, message: dict | list, body: bytes) -> web.Response:
        mode = self.faults.hostile
        request_id = message.get("id") if isinstance(message, dict) else None
        if mode.startswith("http-"):
            return web.Response(status=int(mode[5:]), text="the gateway says no")
        if mode == "not-json":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if mode == "odd-error":
            error = ODD_ERRORS[self.faults.hostile_hits % len(ODD_ERRORS)]
            return web.json_response({"jsonrpc": "2.0", "id": request_id, "error": error})
        if mode == "slow":
            await asyncio.sleep(SLOW_S)
        answer = await self._forward(body)
        if mode == "truncated":
            return web.Response(body=answer[: len(answer) // 2], content_type="application/json")
        parsed = json.loads(answer)
        if mode == "wrong-hash" and isinstance(parsed, dict):
            parsed["result"] = "0x" + "ab" * 32
        elif mode == "wrong-ids" and isinstance(parsed, list):
            for a in parsed:
                a["id"] += 1000
        elif mode == "unknown-receipt" and isinstance(parsed, dict):
            receipts = parsed.get("result")
            for r in receipts if isinstance(receipts, list) else [receipts] if receipts else []:
                r["transactionHash"] = "0x" + "cd" * 32
                break
        return web.json_response(parsed)

    def _exempt(self, message: dict) -> bool:
        return Account.recover_transaction(message["params"][0]).lower() in self.faults.exempt

    def _inject(self, message: dict, body: bytes) -> dict | None:
        f = self.faults
        raw = message["params"][0]
        if self._exempt(message):
            return None
        f.sends += 1
        tx_hash = "0x" + keccak(bytes.fromhex(raw[2:])).hex()
        first_time = tx_hash not in f.seen or f.drop_resends
        f.seen.add(tx_hash)
        if f.capacity_tps and not self._take_token():
            f.rejected += 1
            return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32000, "message": "over capacity"}}
        if f.reject_every and f.sends % f.reject_every == 0 and not (f.reject_once and tx_hash in f.refused):
            f.refused.add(tx_hash)
            f.rejected += 1
            return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32000, "message": f.reject_message}}
        if f.drop_every and first_time and f.sends % f.drop_every == 0:
            f.dropped.add(tx_hash)
            return {"jsonrpc": "2.0", "id": message["id"], "result": tx_hash}
        if f.delay_s and f.sends % f.delay_every == 0:
            task = asyncio.get_running_loop().create_task(self._later(body))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return {"jsonrpc": "2.0", "id": message["id"], "result": tx_hash}
        return None

    def _take_token(self) -> bool:
        """A bucket of capacity_tps tokens a second holding at most a fifth of a second's worth."""
        now = time.monotonic()
        rate = self.faults.capacity_tps
        self._tokens = min(rate / 5, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _later(self, body: bytes) -> None:
        await asyncio.sleep(self.faults.delay_s)
        await self._forward(body)

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

    async def _start(self) -> None:
        self._session = ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._runner.cleanup()
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
        if f.reject_every and f.sends % f.reject_every == 0:
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

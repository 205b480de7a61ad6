"""A JSON-RPC endpoint that only answers eth_sendRawTransaction, with a fixed hash.

Raw asyncio HTTP/1.1 with keep-alive: it does as little as possible, so a benchmark measures
the generator and not the endpoint. Run it as its own process:

    python benchmarks/fake_rpc.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x' + b"ab" * 32 + b'"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER


class Endpoint(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not an asyncio.Transport subclass, but has write)
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0 else None]) if start >= 0 else 0
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            del self.buffer[:end]
            self.transport.write(RESPONSE)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Endpoint, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))

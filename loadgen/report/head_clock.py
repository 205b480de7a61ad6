"""When the chain had each block: an outside clock for auditing latency.

Block timestamps are only a lower bound for when a transaction was committed: a clique or QBFT
block's timestamp is set when the block is begun, and a node starved of CPU imports it seconds
later. Beside a run, ``HeadClock`` polls the heads of the nodes it is given (the one the run's
watcher reads, to check that the watcher keeps up) in a process of its own, so neither the
run's driver nor its watchers slow it, and records for each block number the first time a node
answered a head at or past it: when the block became readable there.

    python -m loadgen.report.head_clock URL [URL …]   # prints "number time" per new head
"""

from __future__ import annotations

import http.client
import itertools
import json
import subprocess
import sys
import time
import urllib.parse
from types import TracebackType

POLL_S = 0.02  # between two heads asked, over all the nodes in turn

_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})


def _poll(urls: list[str]) -> None:
    connections = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        connections.append((http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5), parts.path or "/"))
    head = -1
    while True:
        for connection, path in connections:
            try:
                connection.request("POST", path, _BODY, {"Content-Type": "application/json"})
                number = int(json.loads(connection.getresponse().read())["result"], 16)
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                connection.close()  # a node down or restarting: asked again next turn
                continue
            if number > head:
                print(number, time.time(), flush=True)
                head = number
            time.sleep(POLL_S)


class HeadClock:
    """The poller as a context manager; ``seen`` maps each block number from the first head it
    saw to the last to the time a node first had it (blocks skipped between two polls get the
    later poll's time)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.seen: dict[int, float] = {}

    def __enter__(self) -> HeadClock:
        self._proc = subprocess.Popen([sys.executable, "-m", __name__, *self.urls], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        heads = [(int(n), float(t)) for n, t in (line.split() for line in out.splitlines())]
        for (before, _), (number, t) in itertools.pairwise(heads):
            for n in range(before + 1, number + 1):
                self.seen[n] = t


if __name__ == "__main__":
    _poll(sys.argv[1:])

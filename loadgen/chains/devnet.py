"""The embedded default chain: a real Anvil node with GoQuorum-like settings.

GoQuorum networks run at gas price 0 with legacy transactions, a fixed chain id, a block
period around a second and a large block gas limit; the devnet is configured the same way so
that what loadgen measures locally is shaped like what it measures on Quorum. Anvil comes from
the npm package ``@foundry-rs/anvil`` (installed by ``make setup``), whose platform package
ships the binary.
"""

from __future__ import annotations

import platform
import random
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.chains.nodeproc import NodeProcess, answers, binary_from_env, wait_until
from loadgen.common.errors import ToolMissing, UserError
from loadgen.common.paths import REPO_ROOT

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 1337
DEFAULT_BLOCK_GAS_LIMIT = 1_000_000_000
INSTALL_HINT = "run `make setup` (or `npm ci --ignore-scripts` in the repository root) to install it"


def anvil_binary() -> Path:
    """Where Anvil is: $LOADGEN_ANVIL, the repository's node_modules, then $PATH."""
    if path := binary_from_env("LOADGEN_ANVIL", "the anvil binary"):
        return path
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    system = platform.system().lower()
    if arch:
        shipped = REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
        if shipped.is_file():
            return shipped
    if found := shutil.which("anvil"):
        return Path(found)
    raise ToolMissing(f"Anvil (npm package @foundry-rs/anvil) is not installed: {INSTALL_HINT}")


def free_port(host: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A port free now on every address (a geth node's p2p port listens on all of them), not in
    ``taken`` (the ports already chosen for nodes that have not started yet), and below the
    kernel's ephemeral range: a port the kernel hands out is also what every outgoing connection
    takes, and one of those (a sender's, among thousands) may take it before the node that was
    meant to listen there starts. Above 20,000: Ray's workers listen from 10,002 to 19,999, and
    one starting then could take it too. A chosen port is added to ``taken``."""
    low = _ephemeral_low()
    taken = set() if taken is None else taken
    for _ in range(200):
        port = random.randrange(20_000, low) if low > 20_100 else 0
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("" if host in ("127.0.0.1", "localhost") else host, port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port
    raise UserError(f"no free port found on {host} between 20,000 and {low}: give the nodes a --port")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


@dataclass
class DevnetSettings:
    host: str = "127.0.0.1"
    port: int | None = None  # None: pick a free port
    block_time_s: float = 1.0  # 0: mine one block per transaction, at once
    block_gas_limit: int = DEFAULT_BLOCK_GAS_LIMIT
    chain_id: int = DEFAULT_CHAIN_ID
    accounts: int = 10
    mnemonic: str = DEV_MNEMONIC
    hardfork: str = "london"  # GoQuorum runs pre-Shanghai EVMs
    gas_price: int = 0  # GoQuorum's; above 0 only to test networks that charge for gas
    extra_args: list[str] = field(default_factory=list)

    def args(self, port: int) -> list[str]:
        args = [
            "--host", self.host,
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--gas-price", str(self.gas_price),
            # eth_gasPrice answers base fee + priority fee: the base fee carries the price
            "--base-fee", str(self.gas_price),
            "--disable-min-priority-fee",
            "--gas-limit", str(self.block_gas_limit),
            "--hardfork", self.hardfork,
            "--accounts", str(self.accounts),
            "--mnemonic", self.mnemonic,
            "--order", "fifo",
            "--no-request-size-limit",
        ]  # fmt: skip
        if self.block_time_s > 0:
            args += ["--block-time", f"{self.block_time_s:g}"]
        return args + self.extra_args


class Devnet:
    """A running Anvil node. Use as a context manager, or call start() and stop()."""

    client = "anvil"

    def __init__(self, settings: DevnetSettings | None = None, log_path: Path | None = None) -> None:
        self.settings = settings or DevnetSettings()
        self.log_path = log_path
        self.port: int | None = None
        self._node: NodeProcess | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("devnet not started")
        return f"http://{self.settings.host}:{self.port}"

    @property
    def urls(self) -> list[str]:
        return [self.url]

    @property
    def observer_urls(self) -> list[str]:
        return []  # one node: nothing to observe from beside it

    @property
    def pids(self) -> list[int]:
        return [self._node.pid] if self._node is not None and self._node.pid is not None else []

    def describe(self) -> str:
        return f"embedded devnet (Anvil) at {self.url}"

    def manifest(self) -> dict:
        s = self.settings
        return {
            "client": self.client,
            "nodes": 1,
            "block_time_s": s.block_time_s,
            "block_gas_limit": s.block_gas_limit,
            "gas_price": s.gas_price,
        }

    def start(self, timeout_s: float = 20.0) -> Devnet:
        binary = anvil_binary()
        fixed = self.settings.port is not None
        log_tail = ""
        for _ in range(1 if fixed else 5):
            self.port = self.settings.port if self.settings.port is not None else free_port(self.settings.host)
            self._node = NodeProcess([str(binary), *self.settings.args(self.port)], self.log_path)
            if wait_until(self._answers, timeout_s, alive=lambda: self._node.alive):
                return self
            # a node that exited at once failed on its own (a taken port, a bad flag): say so now
            exited = not self._node.alive
            log_tail = self._node.log_tail()
            self._node.stop()
            self._node = None
            if exited and fixed:
                break
        raise UserError(
            f"Anvil did not start on {self.settings.host}:{self.port}"
            + (" (is the port taken? `--port 0` picks a free one)" if fixed else f" within {timeout_s:g}s")
            + (f": {log_tail}" if log_tail else "")
        )

    def _answers(self) -> bool:
        chain_id = answers(self.url)
        return chain_id is not None and int(chain_id, 16) == self.settings.chain_id

    @property
    def running(self) -> bool:
        return self._node is not None and self._node.alive

    def wait(self) -> int:
        """Blocks until the node exits (the `loadgen devnet` foreground mode)."""
        assert self._node is not None
        return self._node.wait()

    def stop(self) -> None:
        if self._node is not None:
            self._node.stop(grace_s=5)
            self._node = None

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

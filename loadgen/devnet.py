"""The embedded default chain: a real Anvil node with GoQuorum-like settings.

GoQuorum networks run at gas price 0 with legacy transactions, a fixed chain id, a block
period around a second and a large block gas limit; the devnet is configured the same way so
that what loadgen measures locally is shaped like what it measures on Quorum. Anvil comes from
the npm package ``@foundry-rs/anvil`` (installed by ``make setup``), whose platform package
ships the binary.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.errors import ToolMissing, UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 1337
DEFAULT_BLOCK_GAS_LIMIT = 1_000_000_000
INSTALL_HINT = "run `make setup` (or `npm ci --ignore-scripts` in the repository root) to install it"


def anvil_binary() -> Path:
    """Where Anvil is: $LOADGEN_ANVIL, the repository's node_modules, then $PATH."""
    if env := os.environ.get("LOADGEN_ANVIL"):
        path = Path(env)
        if not path.is_file():
            raise ToolMissing(f"LOADGEN_ANVIL={env} is not a file; unset it or point it at the anvil binary")
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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the node gets SIGTERM if the process that started it dies, even by SIGKILL,
    # so a crashed run never leaves an orphan chain holding its port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


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

    def __init__(self, settings: DevnetSettings | None = None, log_path: Path | None = None) -> None:
        self.settings = settings or DevnetSettings()
        self.log_path = log_path
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("devnet not started")
        return f"http://{self.settings.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> Devnet:
        binary = anvil_binary()
        fixed = self.settings.port is not None
        for _ in range(1 if fixed else 5):
            self.port = self.settings.port if fixed else free_port(self.settings.host)
            if self._launch(binary, timeout_s):
                return self
        log_tail = self._read_log_tail()
        raise UserError(
            f"Anvil did not start on {self.settings.host}:{self.port} within {timeout_s:g}s"
            + (" (is the port taken?)" if fixed else "")
            + (f": {log_tail}" if log_tail else "")
        )

    def _launch(self, binary: Path, timeout_s: float) -> bool:
        if self._log_file is not None:
            self._log_file.close()
        if self.log_path is None:
            self._log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        else:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [str(binary), *self.settings.args(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            # out of the terminal's process group: Ctrl-C stops the run, which then stops the node
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.05)
        self._terminate()
        return False

    def _answers(self) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return int(json.load(response)["result"], 16) == self.settings.chain_id
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return False

    def _read_log_tail(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.flush()
        self._log_file.seek(0)
        return self._log_file.read()[-500:].decode(errors="replace").strip().replace("\n", " | ")

    def _terminate(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Blocks until the node exits (the `loadgen devnet` foreground mode)."""
        assert self._proc is not None
        return self._proc.wait()

    def stop(self) -> None:
        self._terminate()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

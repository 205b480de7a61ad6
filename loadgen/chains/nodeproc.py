"""A chain node as a child process that never outlives loadgen.

Shared by the Anvil devnet and the geth network: both must leave no process and no port behind
on a normal stop, Ctrl-C, SIGTERM, or a SIGKILL of loadgen itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from loadgen.chains.node import Node, NotJsonRpc, RpcError
from loadgen.common.errors import ToolMissing


def binary_from_env(variable: str, what: str) -> Path | None:
    """The binary a user named in ``$variable``, None when unset; a wrong path is an error."""
    value = os.environ.get(variable)
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ToolMissing(f"{variable}={value} is not a file; unset it or point it at {what}")
    return path


def _die_with_parent() -> None:
    # Linux: the node gets SIGTERM if the process that started it dies, even by SIGKILL,
    # so a crashed run never leaves an orphan chain holding its port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout_s: float = 1.0) -> Any:
    """One JSON-RPC call on a connection of its own: while a node starts, none is worth keeping."""
    with Node(url, timeout_s) as node:
        return node.call(method, *(params or []))


def answers(url: str, method: str = "eth_chainId") -> Any | None:
    """The node's answer to a parameterless call, or None while it does not answer."""
    try:
        return rpc_call(url, method)
    except (OSError, http.client.HTTPException, RpcError, NotJsonRpc):
        return None


class NodeProcess:
    """One node binary running with its output in a log file (a temporary one by default)."""

    def __init__(self, argv: list[str], log_path: Path | None = None, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log: IO[bytes] = tempfile.TemporaryFile() if log_path is None else open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            preexec_fn=_die_with_parent,
            # out of the terminal's process group: Ctrl-C stops the run, which then stops the node
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def log_tail(self, chars: int = 500) -> str:
        """The end of the node's log; a crash's first line (a panic, a fatal error) comes first,
        since the goroutine dump after it would push it out of the tail."""
        self._log.flush()
        if self.log_path is not None:
            text = self.log_path.read_bytes()
        else:
            self._log.seek(0)
            text = self._log.read()
        lines = text.decode(errors="replace").splitlines()
        crash = next((line.strip() for line in lines if line.startswith(("panic:", "fatal error:", "Fatal:"))), None)
        tail = text[-chars:].decode(errors="replace").strip().replace("\n", " | ")
        return f"{crash} … {tail}" if crash and crash not in tail else tail

    def signal_stop(self) -> None:
        """Asks the node to stop without waiting, so that several shut down side by side."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def stop(self, grace_s: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._log.close()


def wait_until(check, timeout_s: float, every_s: float = 0.05, alive=lambda: True) -> bool:
    """Polls ``check`` until it is true (True), the deadline passes or ``alive`` turns false (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            return False
        if check():
            return True
        time.sleep(every_s)
    return False

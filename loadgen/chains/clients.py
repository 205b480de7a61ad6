"""Where the node binaries of the local networks come from.

geth is built by `make setup` from the Go module proxy at the version ``chains/geth/go.mod`` pins:
go-ethereum 1.10.3, the version GoQuorum v24.4.1 forks. GoQuorum itself is not served by the
module proxy this project's machines reach, so it is used when the machine has it: point
``$LOADGEN_GOQUORUM`` at a GoQuorum ``geth`` binary.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from loadgen.chains.nodeproc import binary_from_env
from loadgen.common.errors import ToolMissing
from loadgen.common.paths import REPO_ROOT

GO_MODULE = REPO_ROOT / "chains" / "geth" / "go.mod"
GOQUORUM_ENV = "LOADGEN_GOQUORUM"


def pinned_version() -> str:
    """The go-ethereum version chains/geth/go.mod pins (what `make setup` builds)."""
    for line in GO_MODULE.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "require" and parts[1] == "github.com/ethereum/go-ethereum":
            return parts[2]
    raise ToolMissing(f"{GO_MODULE} pins no github.com/ethereum/go-ethereum version")


def geth_binary() -> Path:
    """Where geth is: $LOADGEN_GETH, then the build that `make setup` makes."""
    if path := binary_from_env("LOADGEN_GETH", "a geth binary"):
        return path
    built = REPO_ROOT / "build" / f"geth-{pinned_version()}-{platform.system().lower()}-{platform.machine().lower()}" / "geth"
    if built.is_file():
        return built
    raise ToolMissing(f"geth {pinned_version()} is not built: run `make setup` (it builds it with Go into {built.parent})")


def goquorum_binary() -> Path:
    """GoQuorum's geth, from $LOADGEN_GOQUORUM, checked to be GoQuorum."""
    path = binary_from_env(GOQUORUM_ENV, "GoQuorum's geth binary")
    if path is None:
        raise ToolMissing(
            f"client goquorum needs a GoQuorum geth binary: set {GOQUORUM_ENV}=/path/to/geth "
            "(the Go module proxy does not serve github.com/Consensys/quorum, so `make setup` cannot build it); "
            "client: geth is the built-in network"
        )
    try:
        version = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolMissing(f"{GOQUORUM_ENV}={path} does not run ({e}); point it at GoQuorum's geth binary") from None
    if "Quorum Version" not in version:
        raise ToolMissing(f"{GOQUORUM_ENV}={path} is not GoQuorum (its `version` names no Quorum Version); use client: geth for it")
    return path

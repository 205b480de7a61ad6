"""A user's own contract: a Solidity source compiled at run time, or an artifact file.

``compile_source`` runs ``node contracts/compile.mjs``: the project's pinned npm solc with the
settings ``contracts/build.mjs`` uses (``contracts/settings.mjs``), so a source gives the same
bytecode here as in ``contracts/artifacts``, and it targets the Berlin EVM GoQuorum runs.
Results are cached in ``build/solc-cache``: loading solc takes seconds, a cache hit does not
start node at all. ``load_artifact_file`` reads what Hardhat, Foundry or this project wrote.

Everything a user can get wrong is a ``ConfigError`` naming the config field the path came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from loadgen.chains.contracts import Artifact
from loadgen.common.errors import ConfigError, ToolMissing
from loadgen.common.jsonfile import write_json
from loadgen.common.paths import REPO_ROOT

COMPILE_SCRIPT = REPO_ROOT / "contracts" / "compile.mjs"
SETTINGS_SCRIPT = REPO_ROOT / "contracts" / "settings.mjs"
SOLC_PACKAGE = REPO_ROOT / "node_modules" / "solc" / "package.json"
CACHE_DIR = REPO_ROOT / "build" / "solc-cache"
CACHE_FORMAT = 1  # bump when the cached JSON changes shape
FIELD = "workload.contract.source"
INSTALL_HINT = "run `make setup` (or `npm ci --ignore-scripts` in the repository root) to install it"

log = logging.getLogger(__name__)


def compile_source(path: Path, contract: str | None = None, *, field: str = FIELD) -> Artifact:
    """Compiles the Solidity file ``path`` and returns its contract ``contract``.

    With ``contract`` None the file's only deployable contract is taken, or, when it has
    several, the one named like the file (``Token.sol`` → ``Token``). Imports resolve against
    the file's folder and its subfolders (solc drops a leading ``../`` of an import).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(field, f"{path} {'is not a file' if path.exists() else 'does not exist'}", "give the path of a .sol file")
    source = path.read_bytes()
    key = _cache_key(path.name, source)
    output = _cached(key, path.parent)
    if output is None:
        output = _run_solc(path, field)
        if output["errors"]:
            raise ConfigError(field, f"{path} does not compile: {_first_error(output, path)}", "fix the source")
        _store(key, output)
    return _pick(output, path, contract, field)


def load_artifact_file(path: Path, *, field: str = FIELD) -> Artifact:
    """A contract from a JSON artifact: this project's, Hardhat's or Foundry's (``out/X.sol/X.json``),
    or one contract of solc's standard-JSON output (``evm.bytecode``)."""
    path = Path(path)
    shapes = "abi and bytecode, as Hardhat, Foundry (forge build) or `node contracts/build.mjs` write them"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(field, f"{path} does not exist", f"give the path of a JSON artifact with {shapes}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(field, f"{path} is not a JSON file ({e})", f"give a JSON artifact with {shapes}") from None
    if not isinstance(raw, dict):
        raise ConfigError(field, f"{path} holds a JSON {type(raw).__name__}, not an artifact object", f"give a JSON artifact with {shapes}")

    abi = raw.get("abi")
    if isinstance(abi, str):  # solc --combined-json and old Truffle write the ABI as a string
        try:
            abi = json.loads(abi)
        except json.JSONDecodeError:
            abi = None
    if not isinstance(abi, list):
        raise ConfigError(field, f"{path} has no ABI (a list under 'abi')", f"give a JSON artifact with {shapes}")

    # "0x60…" (Hardhat, Truffle, this project) or {"object": "0x60…"} (Foundry; solc's evm.bytecode)
    bytecode = raw.get("bytecode")
    if bytecode is None and isinstance(raw.get("evm"), dict):
        bytecode = raw["evm"].get("bytecode")
    if isinstance(bytecode, dict):
        bytecode = bytecode.get("object")
    if not isinstance(bytecode, str):
        raise ConfigError(
            field,
            f"{path} has no creation bytecode ('bytecode' as a hex string or as {{\"object\": hex}})",
            f"give a JSON artifact with {shapes}",
        )
    name = _artifact_name(raw, path)
    return Artifact(name=name, abi=abi, bytecode=_bytecode(bytecode, f"{path} ({name})", field))


def _artifact_name(raw: dict, path: Path) -> str:
    if isinstance(raw.get("contractName"), str):
        return raw["contractName"]
    # Foundry keeps the name only in the metadata's compilation target
    metadata = raw.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            metadata = None
    if isinstance(metadata, dict):
        target = metadata.get("settings", {}).get("compilationTarget", {})
        if isinstance(target, dict) and len(target) == 1:
            return next(iter(target.values()))
    return path.name.removesuffix(".json")


def _bytecode(text: str, what: str, field: str) -> bytes:
    text = text.removeprefix("0x")
    if not text:
        raise ConfigError(field, f"{what} has empty bytecode: it is an interface or an abstract contract", "name a deployable contract")
    if "__" in text:
        # solc leaves __$<hash>$__ where a linked library's address goes
        raise ConfigError(field, f"{what} needs linking to an external library", "make the library's functions internal, or link it first")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ConfigError(field, f"{what} has bytecode that is not hex", "give the artifact as the compiler wrote it") from None


def _pick(output: dict, path: Path, contract: str | None, field: str) -> Artifact:
    main = output["contracts"].get(output["main"], {})
    if contract is not None:
        # the file's own contracts first, then those of the files it imports
        units = [main, *(c for unit, c in output["contracts"].items() if unit != output["main"])]
        raw = next((contracts[contract] for contracts in units if contract in contracts), None)
        if raw is None:
            names = ", ".join(sorted(main)) or "none"
            raise ConfigError(field, f"{path} has no contract named '{contract}' (it defines: {names})", "name one of these")
    else:
        deployable = {n: c for n, c in main.items() if c["bytecode"] != "0x"}
        if len(deployable) == 1:
            raw = next(iter(deployable.values()))
        elif path.stem in deployable:
            raw = deployable[path.stem]
        else:
            names = ", ".join(sorted(deployable)) or "none"
            raise ConfigError(
                field,
                f"{path} defines {len(deployable)} deployable contracts ({names}) and none is named '{path.stem}'",
                "say which one with the contract's name",
            )
    name = raw["contractName"]
    return Artifact(name=name, abi=raw["abi"], bytecode=_bytecode(raw["bytecode"], f"{path}: contract {name}", field))


def _first_error(output: dict, path: Path) -> str:
    e = output["errors"][0]
    if e.get("file") is None:
        where = str(path)
    else:
        where = str(path) if e["file"] == output["main"] else os.path.normpath(path.parent / e["file"])
        if e.get("line") is not None:
            where += f":{e['line']}:{e['column']}"
    more = len(output["errors"]) - 1
    return f"{where}: {e['type']}: {e['message']}" + (f" (and {more} more error{'s' * (more > 1)})" if more else "")


def _run_solc(path: Path, field: str) -> dict:
    node = shutil.which("node")
    if node is None:
        raise ToolMissing(f"node is not installed, and compiling {path} needs it: {INSTALL_HINT}")
    proc = subprocess.run([node, str(COMPILE_SCRIPT), str(path)], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        detail = next((line for line in lines if "Error" in line), lines[-1] if lines else f"exit code {proc.returncode}")
        raise ConfigError(field, f"compiling {path} failed: {detail}", "check that the file is readable Solidity source")
    return json.loads(proc.stdout)


def _cache_key(unit: str, source: bytes) -> str:
    """What the compiled bytecode depends on, except the imported files (checked on a hit).

    The file name is in: solc's metadata, hashed into the bytecode, names the source unit."""
    if not SOLC_PACKAGE.is_file():
        raise ToolMissing(f"the npm package solc is not installed in {REPO_ROOT / 'node_modules'}: {INSTALL_HINT}")
    h = hashlib.sha256()
    for part in (
        str(CACHE_FORMAT).encode(),
        json.loads(SOLC_PACKAGE.read_text())["version"].encode(),
        SETTINGS_SCRIPT.read_bytes(),
        COMPILE_SCRIPT.read_bytes(),
        unit.encode(),
        source,
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _cached(key: str, folder: Path) -> dict | None:
    try:
        output = json.loads((CACHE_DIR / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    # an import may have changed since, or resolve to another file from another folder
    for unit, sha in output["sources"].items():
        if unit == output["main"]:
            continue
        try:
            if hashlib.sha256(Path(os.path.normpath(folder / unit)).read_bytes()).hexdigest() != sha:
                return None
        except OSError:
            return None
    return output


def _store(key: str, output: dict) -> None:
    try:
        write_json(CACHE_DIR / f"{key}.json", output)  # a concurrent reader sees all of it or nothing
    except OSError as e:  # a read-only checkout still compiles, only slower the next time
        log.warning("cannot cache the compiled contract in %s: %s", CACHE_DIR, e)

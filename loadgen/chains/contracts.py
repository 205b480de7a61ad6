"""The study's contracts as Python sees them: artifacts, deployment, calldata, errors.

Artifacts are built by ``node contracts/build.mjs`` from ``contracts/src`` and committed.
The calldata builders for the hot path (commit, reveal, copy) write the ABI encoding directly
from 32-byte words; a test checks them against web3's encoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from loadgen.common.errors import ToolMissing
from loadgen.common.keccak import keccak
from loadgen.common.paths import REPO_ROOT

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract

    from loadgen.chains.fees import Fees

ARTIFACT_DIR = REPO_ROOT / "contracts" / "artifacts"
WORD = 32  # bytes of an ABI word (a uint256)


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def signature(item: dict) -> str:
    return f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"


def abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: bytes
    # the code a deployment leaves on chain, when the artifact says: the bytecode's, not compared
    runtime: bytes | None = field(default=None, compare=False)

    @property
    def errors(self) -> dict[bytes, dict]:
        return {selector(signature(e)): e for e in self.abi if e["type"] == "error"}

    def decode_error(self, data: bytes | str) -> str:
        """'ChunkOutOfOrder(expected=0, got=2)' for revert data of one of our custom errors."""
        raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
        item = self.errors.get(raw[:4])
        if item is None:
            return f"unknown error 0x{raw.hex()}" if raw else "reverted without data"
        from eth_abi import decode as abi_decode  # the hot path's encoders below need no eth-abi

        values = abi_decode([abi_type(i) for i in item["inputs"]], raw[4:])
        args = ", ".join(f"{i['name']}={v.hex() if isinstance(v, bytes) else v}" for i, v in zip(item["inputs"], values, strict=True))
        return f"{item['name']}({args})"


@cache
def load(name: str) -> Artifact:
    path = ARTIFACT_DIR / f"{name}.json"
    if not path.is_file():
        raise ToolMissing(f"contract artifact {path} is missing: run `npm run build:contracts`")
    raw = json.loads(path.read_text())
    code = {k: bytes.fromhex(raw[k].removeprefix("0x")) for k in ("bytecode", "deployedBytecode")}
    return Artifact(name=name, abi=raw["abi"], bytecode=code["bytecode"], runtime=code["deployedBytecode"])


def deploy(w3: Web3, account: LocalAccount, artifact: Artifact | str, *args: Any, fees: Fees | None = None) -> Contract:
    """Deploys a committed artifact (by name) or any artifact, with its constructor arguments."""
    from loadgen.chains.chain import send_transaction  # web3: only runs with contracts import it

    if isinstance(artifact, str):
        artifact = load(artifact)
    data = artifact.bytecode
    if args:
        data = bytes.fromhex(w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(*args).data_in_transaction[2:])
    receipt = send_transaction(w3, account, to=None, data=data, fees=fees)
    if receipt["status"] != 1:
        raise RuntimeError(f"deploying {artifact.name} reverted in block {receipt['blockNumber']}")
    address = receipt["contractAddress"]
    assert address is not None  # a successful creation has one
    return w3.eth.contract(address=address, abi=artifact.abi)


def calldata(contract: Contract, function: str, *args: Any) -> bytes:
    """A call of ``function`` on ``contract``, ABI-encoded by web3 (the coordinator's calls)."""
    return bytes.fromhex(contract.encode_abi(function, list(args)).removeprefix("0x"))


def _uint(value: int) -> bytes:
    return value.to_bytes(WORD, "big")


COMMIT = selector("commit(uint256,bytes32)")
REVEAL_CHUNK = selector("revealChunk(uint256,uint256,uint256[])")
ARRAY_COPY = selector("copy(uint256[])")


def commit_calldata(round_id: int, commitment: bytes) -> bytes:
    return COMMIT + _uint(round_id) + commitment


def reveal_chunk_calldata(round_id: int, index: int, chunk: bytes) -> bytes:
    # head: roundId, index, offset of the array (3 words); tail: length, then the words.
    return REVEAL_CHUNK + _uint(round_id) + _uint(index) + _uint(3 * WORD) + _uint(len(chunk) // WORD) + chunk


def array_copy_calldata(words: bytes) -> bytes:
    return ARRAY_COPY + _uint(WORD) + _uint(len(words) // WORD) + words

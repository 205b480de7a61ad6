"""A user's own contract: compiling Solidity at run time, reading artifact files, and the
contract-call workload's example contracts (Counter, Token, KeyValue) on a real Anvil."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from eth_hash.auto import keccak
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from loadgen.chains import contracts, solc
from loadgen.chains.chain import connect, send_transaction
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import ConfigError
from loadgen.config.accounts import MnemonicSource, derive_account

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "contracts" / "src"
EXAMPLES = ["Counter", "Token", "KeyValue"]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Every test compiles for real: a cache left by an earlier run must not answer for node."""
    cache = tmp_path / "solc-cache"
    monkeypatch.setattr(solc, "CACHE_DIR", cache)
    return cache


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- compiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.subprocess
def test_compiled_source_matches_the_committed_artifact(name):
    artifact = solc.compile_source(SRC / f"{name}.sol")
    committed = contracts.load(name)
    assert artifact.name == name
    assert artifact.bytecode == committed.bytecode  # same solc, settings and unit name: same metadata hash
    assert artifact.abi == committed.abi


@pytest.mark.chain
def test_imports_resolve_against_the_source_folder(tmp_path, w3, accounts):
    write(tmp_path, "lib/Base.sol", 'pragma solidity ^0.8.0;\nimport "./Twice.sol";\ncontract Base { uint256 public seed = 21; }\n')
    write(tmp_path, "lib/Twice.sol", library(2))
    main = write(
        tmp_path,
        "Main.sol",
        'pragma solidity ^0.8.0;\nimport "./lib/Base.sol";\nimport "lib/Twice.sol";\n'
        "contract Main is Base { function answer() external view returns (uint256) { return Twice.scale(seed); } }\n",
    )
    artifact = solc.compile_source(main)
    assert artifact.name == "Main"  # Base and Twice come from imports: Main is the file's only contract
    contract = deploy_artifact(w3, accounts[0], artifact)
    assert contract.functions.answer().call() == 42

    # the cache holds Main.sol's build, but an import changed: it must not answer for it
    write(tmp_path, "lib/Twice.sol", library(3))
    assert deploy_artifact(w3, accounts[0], solc.compile_source(main)).functions.answer().call() == 63


@pytest.mark.subprocess
def test_compile_error_names_the_file_and_line(tmp_path):
    bad = write(tmp_path, "Bad.sol", "pragma solidity ^0.8.0;\n\ncontract Bad {\n    uint256 x\n}\n")
    with pytest.raises(ConfigError) as caught:
        solc.compile_source(bad, field="workload.contract.source")
    assert caught.value.field == "workload.contract.source"
    assert f"{bad}:5:1: ParserError: Expected ';' but got '}}'" in str(caught.value)

    typed = write(tmp_path, "Typed.sol", 'pragma solidity ^0.8.0;\ncontract Typed {\n    uint256 x = "no";\n}\n')
    with pytest.raises(ConfigError, match=rf"{re.escape(str(typed))}:3:\d+: TypeError: "):
        solc.compile_source(typed)


@pytest.mark.subprocess
def test_an_error_in_an_imported_file_names_that_file(tmp_path):
    write(tmp_path, "dep/Broken.sol", "pragma solidity ^0.8.0;\ncontract Broken {\n  function f() external { undefinedName(); }\n}\n")
    main = write(tmp_path, "Uses.sol", 'pragma solidity ^0.8.0;\nimport "./dep/Broken.sol";\ncontract Uses {}\n')
    broken = re.escape(str(tmp_path / "dep" / "Broken.sol"))
    with pytest.raises(ConfigError, match=rf"{broken}:3:\d+: DeclarationError: Undeclared identifier"):
        solc.compile_source(main, field="f")

    missing = write(tmp_path, "Lost.sol", 'pragma solidity ^0.8.0;\nimport "./nowhere/X.sol";\ncontract Lost {}\n')
    tried = re.escape(f'{missing}:2:1: ParserError: Source "nowhere/X.sol" not found: {tmp_path}/nowhere/X.sol: no such file')
    with pytest.raises(ConfigError, match=tried):
        solc.compile_source(missing)


@pytest.mark.subprocess
def test_which_contract_of_a_file(tmp_path):
    two = (
        "pragma solidity ^0.8.0;\ninterface IThing { function n() external view returns (uint256); }\n"
        "contract Helper { function n() external pure returns (uint256) { return 1; } }\n"
        "contract Thing is IThing { function n() external pure returns (uint256) { return 2; } }\n"
    )
    assert solc.compile_source(write(tmp_path, "Thing.sol", two)).name == "Thing"  # the file's name decides
    assert solc.compile_source(write(tmp_path, "Thing.sol", two), "Helper").name == "Helper"

    with pytest.raises(ConfigError, match=r"Things.sol defines 2 deployable contracts \(Helper, Thing\) and none is named 'Things'"):
        solc.compile_source(write(tmp_path, "Things.sol", two))
    with pytest.raises(ConfigError, match=r"no contract named 'Nope' \(it defines: Helper, IThing, Thing\)") as caught:
        solc.compile_source(tmp_path / "Thing.sol", "Nope", field="workload.contract.name")
    assert caught.value.field == "workload.contract.name"
    with pytest.raises(ConfigError, match="IThing has empty bytecode: it is an interface or an abstract contract"):
        solc.compile_source(tmp_path / "Thing.sol", "IThing")

    one = write(tmp_path, "Whatever.sol", "pragma solidity ^0.8.0;\ncontract Only {}\n")
    assert solc.compile_source(one).name == "Only"  # a single contract needs no naming


@pytest.mark.unit
def test_a_missing_source_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"config field 'x.y': {tmp_path / 'Gone.sol'} does not exist")):
        solc.compile_source(tmp_path / "Gone.sol", field="x.y")
    with pytest.raises(ConfigError, match="is not a file"):
        solc.compile_source(tmp_path)


@pytest.mark.subprocess
def test_second_compile_is_served_from_the_cache(tmp_path, fresh_cache, monkeypatch):
    source = write(tmp_path, "Cached.sol", "pragma solidity ^0.8.0;\ncontract Cached { uint256 public n = 7; }\n")
    first = solc.compile_source(source)
    assert len(list(fresh_cache.glob("*.json"))) == 1

    def no_node(*args, **kwargs):
        raise AssertionError(f"node ran again: {args}")

    monkeypatch.setattr(subprocess, "run", no_node)
    assert solc.compile_source(source) == first
    # the cache is keyed by content: a changed source compiles again
    source.write_text("pragma solidity ^0.8.0;\ncontract Cached { uint256 public n = 8; }\n")
    with pytest.raises(AssertionError, match="node ran again"):
        solc.compile_source(source)


# -- artifact files ----------------------------------------------------------------------------


@pytest.mark.unit
def test_foundry_and_hardhat_artifacts(tmp_path):
    counter = json.loads((REPO / "contracts" / "artifacts" / "Counter.json").read_text())
    foundry = {
        "abi": counter["abi"],
        "bytecode": {"object": counter["bytecode"], "sourceMap": "", "linkReferences": {}},
        "deployedBytecode": {"object": counter["deployedBytecode"], "sourceMap": "", "linkReferences": {}},
        "methodIdentifiers": {"increment()": "d09de08a"},
        "metadata": {"settings": {"compilationTarget": {"src/Counter.sol": "Counter"}}},
        "id": 0,
    }
    hardhat = {
        "_format": "hh-sol-artifact-1",
        "contractName": "Counter",
        "sourceName": "contracts/Counter.sol",
        "abi": counter["abi"],
        "bytecode": counter["bytecode"],
        "deployedBytecode": counter["deployedBytecode"],
        "linkReferences": {},
        "deployedLinkReferences": {},
    }
    for shape in (foundry, hardhat, counter):
        path = tmp_path / "Counter.json"
        path.write_text(json.dumps(shape))
        assert solc.load_artifact_file(path) == contracts.load("Counter")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "is not a JSON file"),
        ("[1, 2]", "holds a JSON list, not an artifact object"),
        ('{"bytecode": "0x6000"}', r"has no ABI \(a list under 'abi'\)"),
        ('{"abi": []}', "has no creation bytecode"),
        ('{"abi": [], "bytecode": {"sourceMap": ""}}', "has no creation bytecode"),
        ('{"abi": [], "bytecode": "0x", "contractName": "IFoo"}', r"\(IFoo\) has empty bytecode: it is an interface"),
        ('{"abi": [], "bytecode": "0x73__$abcdef$__60"}', "needs linking to an external library"),
        ('{"abi": [], "bytecode": "0xzz"}', "has bytecode that is not hex"),
    ],
)
@pytest.mark.unit
def test_bad_artifact_files_say_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "Thing.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as caught:
        solc.load_artifact_file(path, field="workload.contract.artifact")
    assert caught.value.field == "workload.contract.artifact"
    assert str(path) in str(caught.value)


@pytest.mark.unit
def test_a_missing_artifact_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        solc.load_artifact_file(tmp_path / "nope.json")


# -- the example contracts on a chain ----------------------------------------------------------


@pytest.fixture(scope="module")
def w3():
    with Devnet(DevnetSettings(block_time_s=0)) as node:
        yield connect(node.url)


@pytest.fixture(scope="module")
def accounts():
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    return [derive_account(source, i).account() for i in range(4)]


def library(factor: int) -> str:
    body = f"function scale(uint256 x) internal pure returns (uint256) {{ return {factor} * x; }}"
    return f"pragma solidity ^0.8.0;\nlibrary Twice {{ {body} }}\n"


def deploy_artifact(w3, account, artifact: contracts.Artifact):
    receipt = send_transaction(w3, account, to=None, data=artifact.bytecode)
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def call(w3, account, contract, fn: str, *args):
    receipt = send_transaction(w3, account, to=contract.address, data=bytes.fromhex(contract.encode_abi(fn, list(args))[2:]))
    assert receipt["status"] == 1, f"{fn} reverted"
    return receipt


@pytest.mark.chain
def test_counter_counts_per_caller(w3, accounts):
    counter = deploy_artifact(w3, accounts[0], contracts.load("Counter"))
    a, b = accounts[1], accounts[2]
    for _ in range(5):
        call(w3, a, counter, "increment")
    assert counter.functions.count().call() == 5
    assert counter.functions.countOf(a.address).call() == 5
    call(w3, b, counter, "add", 3)
    assert counter.functions.count().call() == 8
    assert [counter.functions.countOf(x.address).call() for x in (a, b, accounts[3])] == [5, 3, 0]
    # checked arithmetic: the deliberate way to get a reverted call
    overflow = bytes.fromhex(counter.encode_abi("add", [2**256 - 1])[2:])
    assert send_transaction(w3, b, to=counter.address, data=overflow, gas=100_000)["status"] == 0
    assert counter.functions.count().call() == 8


@pytest.mark.chain
def test_token_mint_to_workers_then_transfer(w3, accounts):
    deployer, a, b = accounts[0], accounts[1], accounts[2]
    token = deploy_artifact(w3, deployer, contracts.load("Token"))
    initial = token.functions.INITIAL_SUPPLY().call()
    assert token.functions.balanceOf(deployer.address).call() == initial == token.functions.totalSupply().call()
    described = (token.functions.name().call(), token.functions.symbol().call(), token.functions.decimals().call())
    assert described == ("loadgen Token", "LOAD", 18)

    receipt = call(w3, deployer, token, "mintTo", [a.address, b.address], 1_000)
    minted = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["from"], e["args"]["to"], e["args"]["value"]) for e in minted] == [
        ("0x" + "00" * 20, a.address, 1_000),
        ("0x" + "00" * 20, b.address, 1_000),
    ]
    assert token.functions.totalSupply().call() == initial + 2_000

    (moved,) = token.events.Transfer().process_receipt(call(w3, a, token, "transfer", b.address, 400), errors=DISCARD)
    assert (moved["args"]["from"], moved["args"]["to"], moved["args"]["value"]) == (a.address, b.address, 400)
    assert [token.functions.balanceOf(x.address).call() for x in (a, b)] == [600, 1_400]

    call(w3, b, token, "approve", a.address, 500)
    call(w3, a, token, "transferFrom", b.address, accounts[3].address, 200)
    assert token.functions.allowance(b.address, a.address).call() == 300
    assert [token.functions.balanceOf(x.address).call() for x in (b, accounts[3])] == [1_200, 200]

    artifact = contracts.load("Token")
    for sender, fn, args, error in [
        (a, "mintTo", [[a.address], 1], "NotMinter()"),
        (a, "transfer", [b.address, 601], "InsufficientBalance(available=600, required=601)"),
        (a, "transferFrom", [b.address, a.address, 301], "InsufficientAllowance(available=300, required=301)"),
    ]:
        with pytest.raises(ContractCustomError) as caught:
            w3.eth.call({"from": sender.address, "to": token.address, "data": token.encode_abi(fn, args)})
        assert artifact.decode_error(caught.value.data) == error


@pytest.mark.chain
def test_key_value_stores_what_was_put(w3, accounts):
    kv = deploy_artifact(w3, accounts[0], contracts.load("KeyValue"))
    key = keccak(b"worker-1/0")
    value = os.urandom(1_000)
    call(w3, accounts[1], kv, "put", key, value)
    assert kv.functions.get(key).call() == value
    assert kv.functions.writes().call() == 1
    assert kv.functions.get(keccak(b"other")).call() == b""

    # N bytes take ceil(N / 32) slots after the length slot, and no more (values: slot 0)
    slot = keccak(key + (0).to_bytes(32, "big"))
    assert int.from_bytes(w3.eth.get_storage_at(kv.address, slot), "big") == 2 * len(value) + 1  # solidity's long-bytes length
    data = int.from_bytes(keccak(slot), "big")
    last = w3.eth.get_storage_at(kv.address, data + 31)
    assert bytes(last) == value[992:] + b"\x00" * 24
    assert int.from_bytes(w3.eth.get_storage_at(kv.address, data + 32), "big") == 0

    # overwriting with a shorter value leaves nothing of the longer one behind
    call(w3, accounts[2], kv, "put", key, b"short")
    assert kv.functions.get(key).call() == b"short"
    assert int.from_bytes(w3.eth.get_storage_at(kv.address, data + 31), "big") == 0
    assert kv.functions.writes().call() == 2

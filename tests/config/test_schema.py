"""Experiment files: valid ones load, bad ones give one line naming the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadgen.common.errors import ConfigError
from loadgen.common.paths import REPO_ROOT as REPO
from loadgen.config import schema as config
from loadgen.engine.session import embedded_network

FL = {"kind": "fl-round", "model_length": 10_000, "pace_s": 0.5}


def error_of(raw, overrides=None) -> str:
    with pytest.raises(ConfigError) as caught:
        config.from_dict(raw, overrides)
    return str(caught.value)


EXPERIMENT_FILES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "cluster" not in p.relative_to(REPO).parts)


def shipped(path: Path):
    """A config whose contract is a Solidity source compiles it with node: not a unit test."""
    return pytest.param(path, id=path.name, marks=pytest.mark.subprocess if "source:" in path.read_text() else pytest.mark.unit)


@pytest.mark.parametrize("path", [shipped(p) for p in EXPERIMENT_FILES])
def test_shipped_configs_load(path):
    experiment = config.load(path)
    experiment.plugin.check()  # a contract-call's source compiles and its function resolves
    assert experiment.plan(["http://a"], 2).transactions > 0


@pytest.mark.parametrize(
    ("raw", "field", "fix"),
    [
        ({"workload": {**FL, "pace_s": -1}}, "workload.pace_s", "larger"),
        ({"workload": {**FL, "pace": 1}}, "workload.pace", "did you mean workload.pace_s?"),
        ({"workload": {k: v for k, v in FL.items() if k != "pace_s"} | {"pace": 1}}, "workload.pace", "did you mean workload.pace_s?"),
        ({"workload": {**FL, "kind": "fl"}}, "workload.kind", "array-copy, contract-call, fl-round, transfer"),
        ({"workload": {"model_length": 3}}, "workload.kind", "add `kind:`"),
        ({"workload": {k: v for k, v in FL.items() if k != "pace_s"}}, "workload.pace_s", "add it"),
        ({"workload": {**FL, "redundancy": "many"}}, "workload.redundancy", "whole number"),
        ({"workload": {**FL, "contract": "0x1234"}}, "workload.contract", "0x and 40 hex digits"),
        ({"workload": FL, "run": {"threshold": 1.5}}, "run.threshold", "smaller"),
        ({"workload": FL, "chain": {"endpoints": ["127.0.0.1:8545"]}}, "chain.endpoints", "http://"),
        ({"workload": FL, "chain": {"endpoints": "http://a:8545"}}, "chain.endpoints", "list"),
        ({"workload": FL, "colour": "blue"}, "colour", "remove it"),
        ([1, 2], "(top level)", "mapping"),
        ({"workload": FL, "chain": {"devnet": {"client": "besu"}}}, "chain.devnet.client", "one of the values"),
        ({"workload": FL, "chain": {"devnet": {"txpool": {"global_slots": 8}}}}, "chain.devnet.txpool", "client: geth"),
        ({"workload": FL, "chain": {"devnet": {"client": "geth", "consensus": "qbft"}}}, "chain.devnet.consensus", "clique"),
        ({"workload": FL, "chain": {"devnet": {"client": "goquorum", "consensus": "clique"}}}, "chain.devnet.consensus", "qbft"),
        ({"workload": FL, "chain": {"devnet": {"client": "geth", "block_time_s": 0.5}}}, "chain.devnet.block_time_s", "whole"),
        ({"workload": FL, "chain": {"devnet": {"client": "geth", "gas_price": 0}}}, "chain.devnet.gas_price", "1 or more"),
        ({"workload": FL, "chain": {"devnet": {"client": "goquorum", "gas_price": 1}}}, "chain.devnet.gas_price", "use 0"),
        (
            {"workload": FL, "chain": {"devnet": {"client": "geth", "txpool": {"globalslots": 8}}}},
            "chain.devnet.txpool.globalslots",
            "did you mean chain.devnet.txpool.global_slots?",
        ),
    ],
)
@pytest.mark.unit
def test_bad_config_names_field_and_fix(raw, field, fix):
    message = error_of(raw)
    assert f"config field '{field}'" in message
    assert fix in message


@pytest.mark.unit
def test_overrides_apply_before_validation():
    experiment = config.from_dict({"workload": FL}, config.parse_overrides(["workload.pace_s=0.25", "run.threshold=0.9"]))
    assert experiment.workload.pace_s == 0.25
    assert experiment.run.threshold == 0.9
    assert "workload.pace_s" in error_of({"workload": FL}, config.parse_overrides(["workload.pace_s=soon"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.parse_overrides(["workload.pace_s"])


@pytest.mark.unit
def test_an_address_yaml_reads_as_a_number_is_taken_whole_and_refused_short():
    raw = yaml.safe_load("kind: fl-round\nmodel_length: 3\npace_s: 1\ncontract: 0xaB5801a7D398351b8bE11C439e05C5B3259aeC9B\n")
    assert isinstance(raw["contract"], int)  # unquoted, as people write it
    assert config.from_dict({"workload": raw}).workload.contract == "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
    # leading zeros, or a typo: the number cannot tell, so the address must be quoted
    for short in ("0x00aB5801a7D398351b8bE11C439e05C5B3259aeC", "0x12ab"):
        message = error_of({"workload": {**FL, "contract": int(short, 16)}})
        assert "config field 'workload.contract'" in message and "quote the address" in message
    quoted = yaml.safe_load('contract: "0x00aB5801a7D398351b8bE11C439e05C5B3259aeC"')["contract"]
    assert config.from_dict({"workload": {**FL, "contract": quoted}}).workload.contract == quoted


@pytest.mark.unit
def test_defaults():
    experiment = config.from_dict({"workload": FL})
    assert experiment.chain.endpoints == []
    assert experiment.workload.chunk_size == 1_000
    assert experiment.run.threshold == 0.85


@pytest.mark.unit
def test_devnet_defaults_follow_the_client():
    def network(**devnet):
        return embedded_network(config.from_dict({"workload": FL, "chain": {"devnet": devnet}}).chain.devnet)

    anvil = network()
    assert anvil.client == "anvil" and anvil.settings.gas_price == 0
    geth = network(client="geth", txpool={"global_slots": 64, "no_locals": True})
    assert (geth.client, geth.consensus.name, geth.settings.gas_price, geth.settings.block_time_s) == ("geth", "clique", 1, 1)
    assert geth.settings.txpool.global_slots == 64 and geth.settings.txpool.no_locals
    assert geth.settings.txpool.account_slots == 16  # geth's own default for what is not set
    qbft = network(client="goquorum")
    assert (qbft.consensus.name, qbft.settings.gas_price, qbft.settings.block_gas_limit) == ("qbft", 0, 700_000_000)
    raft = network(client="goquorum", consensus="raft")
    assert raft.settings.block_time_s == 0.05
    # a resolved config (as in a manifest or a search's state) loads again as it was
    experiment = config.from_dict({"workload": FL, "chain": {"devnet": {"client": "geth", "nodes": 2}}})
    again = config.from_dict(config.to_public_dict(experiment))
    assert again == experiment


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", "run", *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("workload: {kind: fl-round, model_length: 10, pace_s: 0}\n", [], "workload.pace_s"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1\n", [], "not valid YAML at line"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1}\n", ["--set", "workload.pools=0"], "workload.pools"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1}\n", ["--endpoints", "ws://x"], "chain.endpoints"),
        (None, [], "cannot read the experiment file "),  # the path, not a "config field"
    ],
)
@pytest.mark.subprocess
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, content, args, expected):
    path = tmp_path / "experiment.yaml"
    if content is not None:
        path.write_text(content)
    result = run_cli(str(path), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: error: ")
    assert expected in lines[0]
    assert str(path) not in lines[0] or "config field" not in lines[0]


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("workload.pace=1", "did you mean workload.pace_s?"),
        ("workload.redundancey=2", "did you mean workload.redundancy?"),
        ("run.comit_timeout_s=3", "did you mean run.commit_timeout_s?"),
        ("chain.devnet.blok_time_s=1", "did you mean chain.devnet.block_time_s?"),
    ],
)
def test_a_misspelt_key_is_answered_with_the_key_it_resembles(override, suggestion):
    line = error_of({"workload": FL}, config.parse_overrides([override]))
    assert f"config field '{override.split('=')[0]}': unknown key — {suggestion}" == line


@pytest.mark.unit
def test_a_key_like_no_other_is_only_unknown():
    assert "did you mean" not in error_of({"workload": FL, "zzz": 1})
    # a transfer workload's keys are not fl-round's
    assert "did you mean" not in error_of({"workload": {"kind": "transfer", "pace_s": 1}})

"""Experiment files: valid ones load, bad ones give one line naming the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadgen import config
from loadgen.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
FL = {"kind": "fl-round", "model_length": 10_000, "pace_s": 0.5}


def error_of(raw, overrides=None) -> str:
    with pytest.raises(ConfigError) as caught:
        config.from_dict(raw, overrides)
    return str(caught.value)


EXPERIMENT_FILES = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "cluster" not in p.relative_to(REPO).parts)


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    experiment = config.load(path)
    assert experiment.workload.kind in ("fl-round", "array-copy")


@pytest.mark.parametrize(
    ("raw", "field", "fix"),
    [
        ({"workload": {**FL, "pace_s": -1}}, "workload.pace_s", "larger"),
        ({"workload": {**FL, "pace": 1}}, "workload.pace", "remove it or fix its spelling"),
        ({"workload": {k: v for k, v in FL.items() if k != "pace_s"} | {"pace": 1}}, "workload.pace", "fix its spelling"),
        ({"workload": {**FL, "kind": "fl"}}, "workload.kind", "fl-round, array-copy"),
        ({"workload": {"model_length": 3}}, "workload.kind", "kind: fl-round"),
        ({"workload": {k: v for k, v in FL.items() if k != "pace_s"}}, "workload.pace_s", "add it"),
        ({"workload": {**FL, "redundancy": "many"}}, "workload.redundancy", "whole number"),
        ({"workload": FL, "run": {"threshold": 1.5}}, "run.threshold", "smaller"),
        ({"workload": FL, "chain": {"endpoints": ["127.0.0.1:8545"]}}, "chain.endpoints", "http://"),
        ({"workload": FL, "chain": {"endpoints": "http://a:8545"}}, "chain.endpoints", "list"),
        ({"workload": FL, "colour": "blue"}, "colour", "remove it"),
        ([1, 2], "(top level)", "mapping"),
    ],
)
def test_bad_config_names_field_and_fix(raw, field, fix):
    message = error_of(raw)
    assert f"config field '{field}'" in message
    assert fix in message


def test_overrides_apply_before_validation():
    experiment = config.from_dict({"workload": FL}, config.parse_overrides(["workload.pace_s=0.25", "run.threshold=0.9"]))
    assert experiment.workload.pace_s == 0.25
    assert experiment.run.threshold == 0.9
    assert "workload.pace_s" in error_of({"workload": FL}, config.parse_overrides(["workload.pace_s=soon"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.parse_overrides(["workload.pace_s"])


def test_defaults():
    experiment = config.from_dict({"workload": FL})
    assert experiment.chain.endpoints == []
    assert experiment.workload.chunk_size == 1_000
    assert experiment.run.threshold == 0.85


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", "run", *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("workload: {kind: fl-round, model_length: 10, pace_s: 0}\n", [], "workload.pace_s"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1\n", [], "not valid YAML at line"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1}\n", ["--set", "workload.pools=0"], "workload.pools"),
        ("workload: {kind: fl-round, model_length: 10, pace_s: 1}\n", ["--endpoints", "ws://x"], "chain.endpoints"),
        (None, [], "cannot read the experiment file"),
    ],
)
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

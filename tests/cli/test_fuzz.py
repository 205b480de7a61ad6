"""Bad input, generated: experiment files and --set overrides with wrong types, extreme numbers,
unicode, huge lists, missing and extra keys, thrown at `loadgen run --dry-run`. The answer is
always a plan (exit 0) or one line naming the field (exit 2); never a traceback, never a hang.
A thousand generated cases in `make test` (tests/conftest.py sets the hypothesis profiles)."""

from __future__ import annotations

import copy
import io
import math
import string
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.cli import main

pytestmark = pytest.mark.unit

BASES = [
    {"name": "fl", "workload": {"kind": "fl-round", "model_length": 3000, "chunk_size": 1000, "redundancy": 2, "pools": 2, "pace_s": 0.5}},
    {"name": "copy", "workload": {"kind": "array-copy", "array_size": 100, "rate_tps": 20, "duration_s": 5, "workers": 4}},
    {
        "name": "ramp",
        "workload": {"kind": "transfer", "workers": 3, "profile": {"shape": "ramp", "from_tps": 1, "to_tps": 20, "duration_s": 10}},
    },
    {
        "name": "counter",
        "workload": {
            "kind": "contract-call",
            "contract": {"source": "contracts/src/Counter.sol"},
            "call": {"function": "increment"},
            "rate_tps": 5,
            "duration_s": 2,
            "workers": 2,
        },
    },
]
KEYS = [
    "name", "chain", "chain.endpoints", "chain.chain_id", "chain.gas_limit", "chain.gas_price", "chain.tx_type", "chain.max_fee",
    "chain.priority_fee", "chain.devnet", "chain.devnet.client", "chain.devnet.nodes", "chain.devnet.consensus",
    "chain.devnet.block_time_s", "chain.devnet.block_gas_limit", "workload", "workload.kind", "workload.model_length",
    "workload.chunk_size", "workload.redundancy", "workload.pools", "workload.pace_s", "workload.epochs", "workload.max_retries",
    "workload.array_size", "workload.rate_tps", "workload.duration_s", "workload.workers", "workload.profile",
    "workload.profile.shape", "workload.profile.from_tps", "workload.profile.to_tps", "workload.profile.duration_s",
    "workload.profile.points", "workload.value_wei", "workload.contract", "workload.contract.source", "workload.call",
    "workload.call.function", "workload.call.args", "workload.gas_limit", "run", "run.commit_timeout_s", "run.threshold",
    "run.actors", "run.lead_time_s", "run.gap_check_s", "run.seed", "run.send_mode", "run.max_unanswered", "run.failover",
    "run.failover_after", "run.key_offset", "surprise", "workload.surprise", "run.surprise.deeper",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**12, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-300, 1e300]),
    st.text(max_size=30),
    st.sampled_from(["", "0x", "open", "closed", "qbft", "raft", "anvil", "geth", "goquorum", "ramp", "steps", "💥", "\u202e", "1e9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(string.ascii_lowercase + "_.", max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
) | st.builds(lambda n, v: [v] * n, st.integers(0, 50_000), scalars)  # huge lists


def _set(raw: dict, dotted: str, value: object) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _delete(raw: dict, dotted: str) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), values),
        st.tuples(st.just("del"), st.sampled_from(KEYS), st.none()),
    ),
    max_size=4,
)
overrides = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(KEYS), scalars).map(lambda kv: f"{kv[0]}={yaml.safe_dump(kv[1]).strip().removesuffix('...').strip()}"),
        st.text(max_size=25),
    ),
    max_size=3,
)


def dry_run(path: Path, sets: list[str]) -> tuple[int, str, str]:
    argv = ["run", str(path), "--dry-run"]
    for s in sets:
        argv += ["--set", s]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# each example runs the whole CLI (parse, validate, plan): 200 of them in make test, not 1,000
@settings(max_examples=min(200, settings.default.max_examples))
@given(base=st.sampled_from(BASES), changes=mutations, sets=overrides)
def test_any_input_is_a_plan_or_one_line_naming_the_field(tmp_path, base, changes, sets):
    raw = copy.deepcopy(base)
    for op, key, value in changes:
        if op == "set":
            _set(raw, key, value)
        else:
            _delete(raw, key)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    code, out, err = dry_run(path, sets)
    assert code in (0, 2), (code, err)
    if code == 0:
        assert "transactions" in out and not err
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("loadgen: error:") or lines[0].startswith("loadgen run: error:"), lines[0]
        assert "Traceback" not in err


@pytest.mark.parametrize("base", BASES, ids=[b["name"] for b in BASES])
def test_every_base_experiment_plans(tmp_path, base):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(base))
    code, out, err = dry_run(path, [])
    assert (code, err) == (0, "")
    assert f"experiment {base['name']}" in out

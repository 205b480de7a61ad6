"""Gas limits from the chain and a simulated transaction before each phase, on a Prague-era Anvil
(EIP-7623: calldata has a gas floor the study's formula never met)."""

from __future__ import annotations

import pytest

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import UserError
from loadgen.config import schema as config
from loadgen.engine.preflight import PhaseRefused, judge
from loadgen.workloads.fl_round.workload import reveal_gas
from tests.support.runs import assert_the_chain_agrees, execute, fl_experiment, local_ray, statuses

CHUNK = 1_000  # 32 kB of calldata a reveal: its EIP-7623 floor is about 1.3M gas
PICKY = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
contract Picky {
    uint256 public total;
    function poke(uint256 x) external { require(x < 10, "x must be below 10"); total += x; }
}
"""


@pytest.mark.unit
@pytest.mark.parametrize(
    ("message", "refuse", "cause"),
    [
        ("intrinsic gas too high -- GasFloorMoreThanGasLimit", True, "GasFloorMoreThanGasLimit"),
        ("intrinsic gas too low", True, "intrinsic gas too low"),
        ("oversized data", True, "oversized"),
        ("execution reverted: x must be below 10", True, "reverts: x must be below 10"),
        ("execution reverted", False, "execution reverted"),
        ("execution reverted: 0x08c379a0", False, "0x08c379a0"),
        ("out of gas", False, "out of gas"),
    ],
)
def test_what_dooms_a_phase_and_what_is_measured(message, refuse, cause):
    verdict = judge(message)
    assert verdict.refuse is refuse
    assert cause in verdict.cause


@pytest.fixture(scope="module")
def prague():
    with local_ray(DEV_MNEMONIC), Devnet(DevnetSettings(block_time_s=0.25, hardfork="prague")) as node:
        yield node


def reveals(url: str, key_offset: int, **chain) -> config.Experiment:
    experiment = fl_experiment([url], run={"key_offset": key_offset}, model_length=3 * CHUNK, chunk_size=CHUNK, pools=1, pace_s=0.2)
    return experiment.with_overrides({f"chain.{k}": v for k, v in chain.items()})


@pytest.mark.chain
@pytest.mark.ray
def test_reveal_chunks_get_the_node_s_estimate_and_all_commit_on_prague(prague, tmp_path):
    result, table = execute(reveals(prague.url, 40_000), tmp_path)
    assert statuses(table) == {"committed": 2 * (1 + 3)}
    reveal = result.summary["gas_limits"]["reveal"]
    assert reveal > 1_300_000 > reveal_gas(CHUNK)  # the study's formula would have every chunk dropped
    used = [g for g, p in zip(table.column("gas_used").to_pylist(), table.column("phase").to_pylist(), strict=True) if p == "reveal"]
    assert max(used) <= reveal < 1.5 * max(used)
    assert_the_chain_agrees(connect(prague.url), table)


@pytest.mark.chain
@pytest.mark.ray
def test_a_fixed_gas_limit_under_the_calldata_floor_is_refused_before_a_chunk_is_sent(prague, tmp_path):
    w3 = connect(prague.url)
    with pytest.raises(PhaseRefused) as refused:
        execute(reveals(prague.url, 41_000, gas_limit=reveal_gas(CHUNK)), tmp_path)
    message = str(refused.value)
    assert "\n" not in message
    assert "phase reveal" in message and "GasFloorMoreThanGasLimit" in message and "chain.gas_limit" in message
    assert isinstance(refused.value, UserError)  # the CLI's one line and exit 2
    # the workers' commitments went; not one reveal did
    from loadgen.config.accounts import MnemonicSource, derive_account

    source = MnemonicSource("test", DEV_MNEMONIC)
    nonces = [w3.eth.get_transaction_count(derive_account(source, 1 + 41_000 + i).address) for i in range(2)]
    assert nonces == [1, 1]


@pytest.mark.chain
@pytest.mark.ray
def test_a_call_that_reverts_with_a_reason_is_refused_with_the_reason(prague, tmp_path):
    source = tmp_path / "Picky.sol"
    source.write_text(PICKY)
    experiment = config.from_dict(
        {
            "chain": {"endpoints": [prague.url]},
            "workload": {
                "kind": "contract-call", "contract": {"source": str(source)}, "call": {"function": "poke", "args": [11]},
                "rate_tps": 10, "duration_s": 1, "workers": 2,
            },
            "run": {"key_offset": 42_000, "lead_time_s": 0.5},
        }
    )  # fmt: skip
    with pytest.raises(PhaseRefused, match="reverts: x must be below 10"):
        execute(experiment, tmp_path / "runs")

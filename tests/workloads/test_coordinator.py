"""The coordinator's transactions against the chain's limits: a round that cannot fit a block is
refused before a worker sends, and a coordinator call the node refuses mid-run ends the run in
one line, with everything it did written and the step that failed named."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from loadgen import cli
from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import ConfigError, CoordinatorFailed
from loadgen.config.schema import from_dict
from loadgen.engine.preview import preview
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run
from loadgen.workloads.fl_round.shape import elect_gas, open_gas
from tests.support.runs import fl_experiment, local_ray

SMALL_BLOCKS = 30_000_000


def fl_on_devnet(**workload) -> dict:
    return {
        "name": "round-fit",
        "chain": {"devnet": {"client": "anvil", "block_gas_limit": SMALL_BLOCKS}},
        "workload": {"kind": "fl-round", "model_length": 2_000, "pace_s": 0.5} | workload,
    }


@pytest.mark.unit
def test_the_measured_gas_of_the_round_s_largest_calls_grows_as_measured():
    assert elect_gas(1) < 120_000 and 7_000_000 < elect_gas(128) < 7_600_000  # 7,293,203 measured at 128
    assert open_gas(4) == pytest.approx(319_776, rel=0.01) and open_gas(1_024) == pytest.approx(52_650_876, rel=0.01)


@pytest.mark.unit
def test_a_dry_run_refuses_a_pool_whose_election_no_block_of_the_devnet_holds():
    with pytest.raises(ConfigError) as refused:
        preview(from_dict(fl_on_devnet(redundancy=400, pools=1)))
    line = str(refused.value)
    assert "workload.redundancy" in line and f"this chain's blocks hold {SMALL_BLOCKS:,}" in line
    most = int(line.split("keep it ≤ ")[1].split(" ")[0].replace(",", ""))
    assert elect_gas(most) <= SMALL_BLOCKS < elect_gas(most + 1)
    with pytest.raises(ConfigError, match=r"workload.pools.*opening a round of 1,200 members"):
        preview(from_dict(fl_on_devnet(redundancy=4, pools=300)))
    preview(from_dict(fl_on_devnet(redundancy=4, pools=2)))  # a round that fits passes


@pytest.mark.unit
def test_a_dry_run_refuses_transactions_whose_fixed_gas_no_block_of_the_devnet_holds():
    def calls(gas_limit: int) -> dict:
        return {
            "chain": {"gas_limit": gas_limit, "devnet": {"client": "anvil", "block_gas_limit": SMALL_BLOCKS}},
            "workload": {"kind": "array-copy", "array_size": 100, "rate_tps": 5, "duration_s": 2},
        }

    with pytest.raises(ConfigError, match=rf"'chain.gas_limit'.*need {SMALL_BLOCKS + 1:,} gas but a block holds {SMALL_BLOCKS:,}"):
        preview(from_dict(calls(SMALL_BLOCKS + 1)))
    preview(from_dict(calls(SMALL_BLOCKS)))  # a call a block holds passes


@pytest.mark.chain
def test_a_round_that_cannot_fit_is_refused_before_any_worker_sends(tmp_path, monkeypatch, capsys):
    with Devnet(DevnetSettings(block_time_s=0, block_gas_limit=SMALL_BLOCKS)) as node:
        monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
        args = ["run", "configs/quickstart.yaml", "--endpoints", node.url, "--out", str(tmp_path), "--metrics-port", "0"]
        code = cli.main([*args, "--set", "workload.redundancy=400", "--set", "workload.pools=1"])
        head = connect(node.url).eth.block_number
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith("loadgen: error: config field 'workload.redundancy': electing a pool of 400 members needs ~")
    assert head == 0  # nothing was sent: not a worker's transaction, not even a deployment


@pytest.mark.chain
@pytest.mark.ray
def test_a_coordinator_call_the_node_refuses_mid_run_ends_it_with_its_step_and_every_row(tmp_path):
    with local_ray(mnemonic=DEV_MNEMONIC), Devnet(DevnetSettings(block_time_s=0.25, gas_price=1)) as node:
        w3 = connect(node.url)
        experiment = fl_experiment([node.url], model_length=2_000, pools=1)
        holder: dict[str, Run] = {}

        def on_progress(p: Progress) -> None:
            if p.phase == "reveal":  # the coordinator can no longer pay for its next call
                w3.provider.make_request("anvil_setBalance", [holder["run"].session.coordinator.address, "0x0"])  # type: ignore[arg-type]

        run = Run(experiment, tmp_path, metrics_port=0, metrics_linger_s=0, on_progress=on_progress)
        holder["run"] = run
        with pytest.raises(CoordinatorFailed) as failed:
            run.execute()
    assert failed.value.exit_code == 1
    # the node's own words: its gas estimate finds an account that cannot pay
    assert failed.value.step == "closeRevealPhase and elect" and "exceeds allowance: 0" in failed.value.words
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed"] == {"step": failed.value.step, "error": failed.value.words}
    assert summary["passed"] is False
    table = pq.read_table(run_dir / "transactions.parquet")
    # every worker's commitment and reveals were sent before the coordinator failed: all written
    assert table.num_rows == summary["scheduled"] == summary["committed"] == len(run.plan.workers) * (1 + 2)

"""Where the actors live: the choice between Ray and loadgen's own process (pure), and a run
hosted in the process on a real node, as a user starts it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pyarrow.parquet as pq
import pytest
import yaml

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import ConfigError
from loadgen.config import schema as config
from loadgen.engine.hosting import choose, peak_tps
from loadgen.engine.hosting.in_process import InProcessHost
from tests.support.runs import assert_one_row_per_attempt, assert_the_chain_agrees, statuses


def transfers(rate_tps: float, **run: object) -> config.Experiment:
    return config.from_dict(
        {
            "name": "hosting",
            "chain": {"endpoints": ["http://127.0.0.1:8545"]},
            "workload": {"kind": "transfer", "workers": 20, "rate_tps": rate_tps, "duration_s": 10},
            "run": run,
        }
    )


def kind(experiment: config.Experiment, address: str | None = None, on_ray: bool = False, series: bool = False) -> str:
    run = experiment.run
    plan = None if series else experiment.plan(["http://127.0.0.1:8545"], run.actors or 1)
    return choose(run.hosting, address=address, on_ray=on_ray, actors=run.actors, plan=plan)


@pytest.mark.unit
def test_a_run_one_sender_actor_carries_and_that_names_no_cluster_runs_in_the_process():
    assert kind(transfers(60)) == "process"
    assert kind(transfers(600)) == "process"  # 600 tx/s × 0.8 ms: half a core, one actor's planned load


@pytest.mark.unit
@pytest.mark.parametrize(
    "experiment, address, on_ray, series",
    [
        (transfers(700), None, False, False),  # more than one sender actor's CPU
        (transfers(60, actors=2), None, False, False),  # asked for two actors
        (transfers(60), "10.0.0.1:6379", False, False),  # a cluster named
        (transfers(60), None, True, False),  # already on Ray (a test's, `ray job submit`'s)
        (transfers(60), None, False, True),  # a search or a sweep: the rate changes from trial to trial
        (transfers(60, hosting="ray"), None, False, False),
    ],
)
def test_anything_that_asks_for_ray_or_more_than_one_process_gets_ray(experiment, address, on_ray, series):
    assert kind(experiment, address, on_ray, series) == "ray"


@pytest.mark.unit
def test_process_hosting_is_kept_when_asked_for_and_refused_beside_a_named_cluster():
    assert kind(transfers(5000, hosting="process")) == "process"
    assert kind(transfers(60, hosting="process"), series=True) == "process"
    with pytest.raises(ConfigError, match=r"run\.hosting"):
        kind(transfers(60, hosting="process"), address="10.0.0.1:6379")


@pytest.mark.unit
def test_a_burst_counts_as_its_transactions_in_one_second():
    experiment = config.from_dict(
        {
            "name": "burst",
            "chain": {"endpoints": ["http://127.0.0.1:8545"]},
            "workload": {"kind": "fl-round", "model_length": 3_000, "redundancy": 400, "pools": 1, "pace_s": 10},
        }
    )
    plan = experiment.plan(["http://127.0.0.1:8545"], 1)
    assert peak_tps(plan) == 400  # 400 commitments at once; the reveals are 40 a second
    assert kind(experiment) == "process"


RUN_IN_PROCESS = """
import sys
from loadgen.cli import main
code = main(sys.argv[1:])
print("ray imported:", "ray" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.chain
def test_a_run_in_the_process_records_what_the_chain_holds_without_ever_importing_ray(tmp_path, monkeypatch):
    monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    with Devnet(DevnetSettings(block_time_s=0.25)) as node:
        path = tmp_path / "fl.yaml"
        doc = {
            "name": "in-process",
            "chain": {"endpoints": [node.url]},
            "workload": {"kind": "fl-round", "model_length": 3_000, "redundancy": 2, "pools": 2, "pace_s": 0.3},
            "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "gap_check_s": 1.0},
        }
        path.write_text(yaml.safe_dump(doc))
        command = [sys.executable, "-c", RUN_IN_PROCESS, "run", str(path), "--out", str(tmp_path / "runs"), "--metrics-port", "0"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        said = done.stdout + done.stderr
        assert "4 workers in loadgen's own process (no Ray: run.hosting)" in said
        assert "ray imported: False" in said
        assert "Ray" not in said.replace("(no Ray: run.hosting)", "")
        (run_dir,) = (tmp_path / "runs").iterdir()
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert (manifest["hosting"], manifest["ray_cluster"], manifest["ray_nodes"]) == ("process", None, [])
        table = pq.read_table(run_dir / "transactions.parquet")
        assert_one_row_per_attempt(table, planned=4 * (1 + 3))
        assert statuses(table) == {"committed": 16}
        assert_the_chain_agrees(connect(node.url), table)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["verdict"] == "PASS" and [p["expected"] for p in summary["rounds"][0]["pools"]] == [True, True]


class Tally:
    """An actor as the process host runs one: its methods on the host's loop."""

    def __init__(self) -> None:
        self.total = 0

    async def add(self, k: int) -> tuple[int, str]:
        await asyncio.sleep(0)
        self.total += k
        return self.total, threading.current_thread().name

    def refuse(self) -> None:
        raise ValueError("no")

    async def forever(self) -> None:
        await asyncio.Event().wait()


@pytest.mark.unit
def test_the_process_host_runs_an_actors_methods_on_its_loop_and_ends_what_is_left_when_it_closes():
    with InProcessHost() as host:
        tally = host.place(Tally)
        assert host.get([tally.add.remote(2), tally.add.remote(3)]) == [(2, "loadgen-actors"), (5, "loadgen-actors")]
        assert host.each([tally.add.remote(1)]) == [(6, "loadgen-actors")]
        with pytest.raises(ValueError, match="no"):  # what the method raised, as it raised it
            host.get(tally.refuse.remote())
        stuck = tally.forever.remote()
        done, pending = host.wait([tally.add.remote(0), stuck], timeout_s=0.2)
        assert (len(done), pending) == (1, [stuck]) and not host.died(done[0])
    assert stuck.cancelled() and not host._thread.is_alive()

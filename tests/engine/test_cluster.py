"""A two-node Ray cluster on one machine: both nodes host actors and both send."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from ray.cluster_utils import Cluster

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import assert_the_chain_agrees, execute, fl_experiment, statuses

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos, pytest.mark.slow]


def test_a_run_joins_a_cluster_started_by_ray_start_with_its_token(tmp_path):
    """The guide's cluster set-up (docs/clusters.md): `ray start --head` turns token authentication on whenever a token
    is at hand, and Ray's driver sends it only to a cluster it finds by itself (auto), never to an
    address: `--ray-address HEAD:PORT` must still get in. First in the module: its own Ray."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")} | {"HOME": str(tmp_path)}
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    assert (tmp_path / ".ray" / "auth_token").is_file()
    # a port outside the range its own workers listen in (10002-19999), where one could take it first
    port = next(p for p in range(6380, 6480) if socket.socket().connect_ex(("127.0.0.1", p)) != 0)
    head = subprocess.Popen(
        [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.time() < deadline and head.poll() is None, "ray start --head did not come up"
            time.sleep(0.2)
        with Devnet(DevnetSettings(block_time_s=0.25)) as node:
            experiment = {
                "chain": {"endpoints": [node.url]},
                "workload": {"kind": "transfer", "rate_tps": 10, "duration_s": 2, "workers": 2},
            }
            (tmp_path / "transfers.yaml").write_text(yaml.safe_dump(experiment))
            result = subprocess.run(
                [sys.executable, "-m", "loadgen", "run", str(tmp_path / "transfers.yaml"), "--ray-address", f"127.0.0.1:{port}",
                 "--metrics-port", "0", "--json", "--out", str(tmp_path / "runs")],
                env=env | {"LOADGEN_MNEMONIC": DEV_MNEMONIC}, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"joining the Ray cluster at 127.0.0.1:{port}" in result.stderr
        summary = json.loads(result.stdout)
        assert summary["committed"] == summary["scheduled"] == 20
    finally:
        head.terminate()
        head.wait(timeout=60)


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_both_nodes_send_and_workers_spread_over_endpoints(two_nodes, tmp_path, monkeypatch):
    monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    # Two RPC endpoints of one chain: two pass-through proxies in front of one Anvil.
    with Devnet(DevnetSettings(block_time_s=0.25)) as node, FaultProxy(node.url, Faults()) as p1, FaultProxy(node.url, Faults()) as p2:
        result, table = execute(fl_experiment([p1.url, p2.url]), tmp_path)
    assert len({n["NodeID"] for n in ray.nodes() if n["Alive"]}) == 2
    assert result.summary["commit_ratio"] == 1.0
    nodes = set(table.column("node").to_pylist())
    assert len(nodes) == 2
    for n in nodes:
        mine = table.filter(pc.equal(table.column("node"), n))
        assert statuses(mine) == {"committed": 8}
    endpoints = table.column("endpoint").to_pylist()
    assert endpoints.count(p1.url) == endpoints.count(p2.url) == 8
    # two watchers, one per node: each block stored once, none missing
    blocks = pq.read_table(result.run_dir / "blocks.parquet").column("number").to_pylist()
    assert blocks == list(range(blocks[0], blocks[0] + len(blocks)))


TWO_NODES_APART = """
import sys, time
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes it
cluster.shutdown()
"""


def test_the_cli_runs_on_a_two_node_cluster_that_does_not_authenticate(tmp_path):
    """As a user runs it, against a cluster without token authentication (``ray.cluster_utils``,
    ``RAY_AUTH_MODE=disabled``) while a token is at hand on the machine: a driver that turned
    token authentication on demanded the token of the cluster's own calls to it, and the cluster,
    taking the driver for dead, cancelled every actor it created. The cluster runs in a process
    of its own: Ray's authentication setting is process-wide, and this one's must not change."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")} | {"HOME": str(tmp_path)}
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    apart = env | {"RAY_AUTH_MODE": "disabled"}
    cluster = subprocess.Popen([sys.executable, "-c", TWO_NODES_APART], env=apart, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the cluster did not come up"
        with Devnet(DevnetSettings(block_time_s=0.25)) as node:
            experiment = {
                "chain": {"endpoints": [node.url]},
                "workload": {"kind": "transfer", "rate_tps": 20, "duration_s": 2, "workers": 4},
                "run": {"actors": 2},
            }
            (tmp_path / "transfers.yaml").write_text(yaml.safe_dump(experiment))
            result = subprocess.run(
                [sys.executable, "-m", "loadgen", "run", str(tmp_path / "transfers.yaml"), "--ray-address", address,
                 "--metrics-port", "0", "--json", "--out", str(tmp_path / "runs")],
                env=env | {"LOADGEN_MNEMONIC": DEV_MNEMONIC}, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
    finally:
        cluster.stdin.close()
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill()
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"joining the Ray cluster at {address}" in result.stderr
    assert "4 workers in 2 actors on 2 Ray node(s)" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["committed"] == summary["scheduled"] == 40


def test_a_lost_ray_node_s_workers_are_taken_over_by_the_other_node(two_nodes, tmp_path, monkeypatch):
    """Last in the module: it takes the second node away."""
    monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    holder: dict[str, Run] = {}
    lost: list[str] = []

    def on_progress(p: Progress) -> None:
        fleet = holder["run"].fleet
        assert fleet is not None
        if p.phase == "reveal" and not lost:
            victim = next(n for n in two_nodes.worker_nodes if n.node_id in fleet.slots)
            lost.append(victim.node_id)
            two_nodes.remove_node(victim)

    with Devnet(DevnetSettings(block_time_s=0.25)) as node:
        experiment = fl_experiment([node.url], run={"key_offset": 70_000}, model_length=20 * 100, chunk_size=100, pace_s=0.25)
        run = Run(experiment, tmp_path, metrics_port=0, metrics_linger_s=0, on_progress=on_progress)
        holder["run"] = run
        result = run.execute()
        table = pq.read_table(result.run_dir / "transactions.parquet")
        assert_the_chain_agrees(connect(node.url), table)
    assert lost and result.summary["actors_replaced"] == 1
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]}.isdisjoint(lost)
    committed = table.filter(pc.equal(table.column("status"), "committed"))
    assert Counter(committed.column("worker").to_pylist()) == {w: 1 + 20 for w in range(4)}
    (round_,) = result.summary["rounds"]
    assert all(p["expected"] for p in round_["pools"])

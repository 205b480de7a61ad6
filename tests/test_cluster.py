"""A two-node Ray cluster on one machine: both nodes host actors and both send."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
import ray
from ray.cluster_utils import Cluster

from loadgen.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from tests.engine import execute, fl_experiment, statuses
from tests.faults import FaultProxy, Faults

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.chaos, pytest.mark.slow]


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

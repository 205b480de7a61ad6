"""GoQuorum itself under the engine: QBFT, IBFT (the study's) and raft networks of real GoQuorum
v24.4.1 nodes.

These need a GoQuorum binary in $LOADGEN_GOQUORUM, which this project's machines cannot build
(the Go module proxy refuses github.com/Consensys/quorum), so they carry the `goquorum` marker
and run with `make test-goquorum`, not in `make test`. Everything they share with geth (the
engine, the txpool, the RPC) is covered in `make test` by tests/chains/test_gethnet.py.
"""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
import rlp

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings, TxpoolSettings
from loadgen.chains.node import Node
from loadgen.chains.nodeproc import rpc_call
from loadgen.chains.probe import probe
from tests.chains.test_gethnet import fl
from tests.support.runs import assert_one_row_per_attempt, assert_the_chain_agrees, execute, local_ray, pid_alive, statuses

pytestmark = [pytest.mark.goquorum, pytest.mark.chain, pytest.mark.ray]

TIGHT = TxpoolSettings(account_slots=2, global_slots=12, account_queue=2, global_queue=4, no_locals=True)


@pytest.fixture(scope="module", autouse=True)
def with_ray():
    with local_ray(mnemonic=DEV_MNEMONIC):
        yield


@pytest.fixture(scope="module", params=["qbft", "ibft"])
def bft(request):
    """GoQuorum's two Byzantine-fault-tolerant engines, each as a 4-validator network."""
    settings = GethNetworkSettings(consensus=request.param, gas_price=0, block_gas_limit=700_000_000, txpool=TIGHT)
    with GethNetwork(settings) as net:
        yield net


@pytest.fixture(scope="module")
def raft():
    with GethNetwork(GethNetworkSettings(consensus="raft", gas_price=0, block_gas_limit=700_000_000, block_time_s=0.05)) as net:
        yield net


def test_a_bft_network_answers_alike_and_stops_clean(bft):
    infos = [probe(Node(u)) for u in bft.urls]
    assert {i.gas_price for i in infos} == {0}  # gas-free, as GoQuorum networks run
    assert all("quorum-v24.4.1" in i.client_version for i in infos)
    height = min(i.head for i in infos) - 1
    assert len({rpc_call(u, "eth_getBlockByNumber", [hex(height), False])["hash"] for u in bft.urls}) == 1
    validators = rpc_call(bft.urls[0], "istanbul_getValidators", ["latest"])
    assert sorted(v.lower() for v in validators) == sorted(n.node_address.lower() for n in bft.identities)
    # the engine the genesis asked for: IBFT's header is vanity then RLP, QBFT's is RLP whole
    extra = bytes.fromhex(rpc_call(bft.urls[0], "eth_getBlockByNumber", [hex(height), False])["extraData"][2:])
    sealed_by = rlp.decode(extra[32:])[0] if bft.consensus.name == "ibft" else rlp.decode(extra)[1]
    assert len(sealed_by) == 4
    # a chain id of its own: node keys derive from it, and these must not be the running network's
    small = GethNetwork(GethNetworkSettings(nodes=2, consensus=bft.consensus.name, gas_price=0, chain_id=4242)).start()
    pids = small.pids
    small.stop()
    assert pids and not any(pid_alive(p) for p in pids)


@pytest.mark.slow
def test_an_fl_round_over_four_bft_endpoints_commits_and_elects(bft, tmp_path):
    result, table = execute(fl(bft.urls), tmp_path)
    assert statuses(table) == {"committed": 8 * (1 + 6)}
    assert [p["expected"] for p in result.summary["rounds"][0]["pools"]] == [True, True]
    assert len(set(table.column("endpoint").to_pylist())) == 4


@pytest.mark.slow
def test_overflowing_bft_pools_is_counted_exactly(bft, tmp_path):
    # GoQuorum takes what a full pool cannot hold and drops it later, silently: the engine
    # sees nonce gaps, re-sends what the nodes lost, and counts what never landed as dropped
    experiment = fl(bft.urls, model_length=20_000, pace_s=0.05, max_retries=2)
    # GoQuorum's trimmed pools take long to drain through re-sends: 30 s rather than 15
    experiment = experiment.model_copy(update={"run": experiment.run.model_copy(update={"commit_timeout_s": 30.0})})
    _, table = execute(experiment, tmp_path)
    counts = statuses(table)
    resends = sum(table.column("resends").to_pylist())
    assert resends > 0 or counts.get("rejected", 0) > 0 or counts.get("dropped", 0) > 0, counts
    assert_one_row_per_attempt(table, planned=8 * (1 + 20))
    assert_the_chain_agrees(connect(bft.urls[0]), table)


@pytest.mark.slow
def test_raft_stamps_nanoseconds_and_latencies_stay_sane(raft, tmp_path):
    _, table = execute(fl(raft.urls, pace_s=0.25), tmp_path)
    assert statuses(table) == {"committed": 8 * (1 + 6)}
    head = rpc_call(raft.urls[0], "eth_getBlockByNumber", ["latest", False])
    assert int(head["timestamp"], 16) > 10**18  # nanoseconds on the wire
    latencies = table.column("latency_s").to_pylist()
    assert all(0 < lat < 30 for lat in latencies)
    # converted to seconds in the rows: within a second of when the block was seen
    skew = pc.subtract(table.column("t_included"), table.column("block_timestamp")).to_pylist()
    assert all(-1 < s < 1 for s in skew)

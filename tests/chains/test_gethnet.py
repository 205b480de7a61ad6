"""The multi-node target: real geth 1.10.3 nodes (GoQuorum's base) in a clique network on loopback,
started by loadgen, and the engine run against them."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import rlp
from eth_keyfile import keyfile
from web3 import Web3
from web3.types import RPCEndpoint

from loadgen.chains import clients, gethnet
from loadgen.chains.chain import build_transaction, connect, submit, wait_receipts
from loadgen.chains.consensus import ISTANBUL_DIGEST, Clique, Ibft, NodeIdentity, Qbft, Raft
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.fees import Fees
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings, TxpoolSettings
from loadgen.chains.node import Node, RpcError
from loadgen.chains.nodeproc import rpc_call
from loadgen.chains.probe import probe
from loadgen.common.errors import ChainStalled, ToolMissing
from loadgen.config import schema as config
from loadgen.config.accounts import derive_account, mnemonic_source
from loadgen.engine.progress import Progress
from loadgen.engine.run import Run
from loadgen.study.search import Search
from tests.support.runs import (
    assert_one_row_per_attempt,
    assert_the_chain_agrees,
    children_of_a_killed_parent,
    execute,
    fl_experiment,
    local_ray,
    pid_alive,
    statuses,
)

# Small enough that 8 workers sending 32 kB chunks every 0.05 s overflow every node's pool
# (a chunk takes 2 of the 32 kB slots: 8 chunk transactions per node).
TIGHT = TxpoolSettings(account_slots=2, global_slots=12, account_queue=2, global_queue=4, no_locals=True)


@pytest.fixture(scope="module")
def tight_network():
    """One network for the module: 4 nodes whose pools hold 16 chunk transactions each."""
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(GethNetworkSettings(nodes=4, txpool=TIGHT)) as net:
        yield net


def fl(endpoints: list[str], run: dict | None = None, **workload) -> config.Experiment:
    """Two pools of four workers, a chunk a second each: an easy pace on any of these networks."""
    defaults = {"model_length": 6_000, "redundancy": 4, "pace_s": 1.0}
    return fl_experiment(endpoints, run={"commit_timeout_s": 15, "gap_check_s": 2.0} | (run or {}), **defaults | workload)


@pytest.mark.unit
def test_clique_genesis_is_berlin_with_the_signers_in_extra_data():
    settings = GethNetworkSettings(nodes=2, chain_id=99, block_time_s=2)
    identities = [NodeIdentity(i, 99) for i in range(2)]
    doc = gethnet.genesis(settings, Clique(), identities, ["0x" + "11" * 20])
    extra = bytes.fromhex(doc["extraData"][2:])
    assert len(extra) == 32 + 2 * 20 + 65
    # clique wants the signers sorted, as raw addresses between the vanity and the seal
    signers = sorted(bytes.fromhex(i.signer[2:]) for i in identities)
    assert [extra[32:52], extra[52:72]] == signers
    cfg = doc["config"]
    assert cfg["chainId"] == 99 and cfg["clique"]["period"] == 2 and cfg["berlinBlock"] == 0
    assert "londonBlock" not in cfg  # GoQuorum v24.4.1 runs the Berlin EVM
    assert doc["alloc"] == {"11" * 20: {"balance": hex(gethnet.PREFUND_WEI)}}


@pytest.mark.unit
def test_qbft_genesis_is_rlp_with_the_node_keys_as_validators():
    identities = [NodeIdentity(i, 1337) for i in range(4)]
    doc = gethnet.genesis(GethNetworkSettings(consensus="qbft", gas_price=0), Qbft(), identities, [])
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(doc["extraData"][2:]))
    assert vanity == b"\x00" * 32 and vote == [] and round_ == b"" and seals == []
    assert [Web3.to_checksum_address(v) for v in validators] == [i.node_address for i in identities]
    assert doc["mixHash"] == ISTANBUL_DIGEST
    cfg = doc["config"]
    assert cfg["isQuorum"] is True and cfg["qbft"]["blockperiodseconds"] == 1
    assert 32 <= cfg["txnSizeLimit"] <= 128  # KB, GoQuorum's allowed range: a 32 kB chunk fits
    raft = gethnet.genesis(GethNetworkSettings(consensus="raft", gas_price=0), Raft(), identities, [])
    assert raft["difficulty"] == "0x0" and "qbft" not in raft["config"] and raft["config"]["isQuorum"] is True


@pytest.mark.unit
def test_ibft_genesis_is_vanity_then_rlp_with_the_node_keys_as_validators():
    identities = [NodeIdentity(i, 1337) for i in range(4)]
    doc = gethnet.genesis(GethNetworkSettings(consensus="ibft", gas_price=0), Ibft(), identities, [])
    extra = bytes.fromhex(doc["extraData"][2:])
    assert extra[:32] == b"\x00" * 32
    validators, seal, seals = rlp.decode(extra[32:])
    assert [Web3.to_checksum_address(v) for v in validators] == [i.node_address for i in identities]
    assert seal == b"" and seals == []
    assert doc["mixHash"] == ISTANBUL_DIGEST and doc["difficulty"] == "0x1"
    cfg = doc["config"]
    # an "ibft" section (not "istanbul" with a testQBFTBlock): GoQuorum runs the IBFT engine from block 0
    assert cfg["ibft"]["blockperiodseconds"] == 1 and "qbft" not in cfg and "istanbul" not in cfg


@pytest.mark.chain
def test_a_signer_whose_keystore_iv_starts_with_a_zero_byte_still_mines(monkeypatch):
    # eth-keyfile draws the IV as 16 random bytes: force the leading zero it drops one time in 256
    real = keyfile.Random.get_random_bytes
    monkeypatch.setattr(keyfile.Random, "get_random_bytes", lambda n: b"\0" + real(n - 1) if n == 16 else real(n))
    with GethNetwork(GethNetworkSettings(nodes=1)) as net:
        w3 = connect(net.urls[0])
        first = w3.eth.block_number
        deadline = time.monotonic() + 10
        while w3.eth.block_number <= first and time.monotonic() < deadline:
            time.sleep(0.2)
        assert w3.eth.block_number > first  # the node unlocked its signer key and seals blocks


@pytest.mark.subprocess
def test_the_pinned_version_and_missing_binaries(monkeypatch, tmp_path):
    built = clients.geth_binary()
    assert clients.pinned_version() == "v1.10.3"
    monkeypatch.setenv("LOADGEN_GETH", str(tmp_path / "nope"))
    with pytest.raises(ToolMissing, match="LOADGEN_GETH"):
        clients.geth_binary()
    monkeypatch.delenv("LOADGEN_GETH")
    monkeypatch.setattr(clients, "REPO_ROOT", tmp_path)
    with pytest.raises(ToolMissing, match="make setup"):
        clients.geth_binary()
    monkeypatch.delenv("LOADGEN_GOQUORUM", raising=False)
    with pytest.raises(ToolMissing, match="LOADGEN_GOQUORUM"):
        clients.goquorum_binary()
    # upstream geth is not GoQuorum, and is refused as such
    monkeypatch.setenv("LOADGEN_GOQUORUM", str(built))
    with pytest.raises(ToolMissing, match="is not GoQuorum"):
        clients.goquorum_binary()


@pytest.mark.chain
@pytest.mark.ray
def test_four_nodes_answer_alike_and_are_peered(tight_network):
    urls = tight_network.urls
    assert len(set(urls)) == 4
    infos = [probe(Node(u)) for u in urls]
    assert {i.chain_id for i in infos} == {1337}
    assert {i.gas_price for i in infos} == {1}  # geth's floor; GoQuorum would answer 0
    assert all(i.client_version.startswith("Geth/v1.10.3") for i in infos)
    assert all(int(rpc_call(u, "net_peerCount"), 16) == 3 for u in urls)
    # the same chain everywhere: a block a few behind the head has the same hash on every node
    height = min(i.head for i in infos) - 1
    assert len({rpc_call(u, "eth_getBlockByNumber", [hex(height), False])["hash"] for u in urls}) == 1
    # every node seals in turn: the recent blocks have several signers, all of them nodes' signers
    recents = rpc_call(urls[0], "clique_getSnapshot", ["latest"])["recents"]
    signers = {s.lower() for s in recents.values()}
    assert len(signers) >= 2
    assert signers <= {n.signer.lower() for n in tight_network.identities}


@pytest.mark.chain
@pytest.mark.ray
def test_each_node_serves_its_own_prometheus_metrics(tight_network):
    for url in tight_network.metrics_urls:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        names = {line.split(" ")[0].split("{")[0] for line in text.splitlines() if line and not line.startswith("#")}
        assert {"txpool_pending", "txpool_queued", "p2p_peers", "chain_head_block", "system_cpu_procload"} <= names
    targets = gethnet.prometheus_targets(tight_network)
    assert [t["labels"]["node"] for t in targets] == ["node0", "node1", "node2", "node3"]


@pytest.mark.chain
def test_stop_leaves_no_process_behind():
    net = GethNetwork(GethNetworkSettings(nodes=2)).start()
    pids, root = net.pids, net.root
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    net.stop()
    assert not any(pid_alive(p) for p in pids)
    assert root is not None and not root.exists()  # the temporary data dirs go too


@pytest.mark.chain
def test_no_node_survives_a_sigkill_of_loadgen():
    pids, gone = children_of_a_killed_parent(
        "from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings\nchain = GethNetwork(GethNetworkSettings(nodes=2)).start()"
    )
    assert len(pids) == 2 and gone


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_a_run_starts_its_own_network_and_every_pool_elects(tmp_path, monkeypatch):
    monkeypatch.delenv("LOADGEN_MNEMONIC", raising=False)
    experiment = config.from_dict(
        {
            "name": "geth-embedded",
            "chain": {"devnet": {"client": "geth", "nodes": 4}},
            "workload": {"kind": "fl-round", "model_length": 4_000, "redundancy": 3, "pools": 2, "pace_s": 0.5},
            "run": {"commit_timeout_s": 15, "lead_time_s": 0.5},
        }
    )
    result, table = execute(experiment, tmp_path)
    assert statuses(table) == {"committed": 6 * (1 + 4)}
    assert [p["expected"] for p in result.summary["rounds"][0]["pools"]] == [True, True]
    assert len(set(table.column("endpoint").to_pylist())) == 4  # spread over every node
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["chain"]["client_version"].startswith("Geth/v1.10.3")
    assert manifest["devnet"]["nodes"] == 4 and len(manifest["endpoints"]) == 4
    # geth has no eth_getBlockReceipts: every inclusion came through the batched receipts
    assert all(0 < lat < 15 for lat in table.column("latency_s").to_pylist())


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_overflowing_small_pools_is_counted_exactly(tight_network, tmp_path):
    experiment = fl(tight_network.urls, model_length=20_000, pace_s=0.05, max_retries=2)
    result, table = execute(experiment, tmp_path)
    counts = statuses(table)
    assert counts.get("rejected", 0) > 0, counts
    errors = set(pc.drop_null(table.filter(pc.equal(table.column("status"), "rejected")).column("error")).to_pylist())
    # the node's own words: a full pool refuses an equally priced remote transaction
    assert errors and all("underpriced" in e or "txpool is full" in e for e in errors), errors
    assert_one_row_per_attempt(table, planned=8 * (1 + 20))
    assert_the_chain_agrees(connect(tight_network.urls[0]), table)
    assert result.summary["scheduled"] == table.num_rows


@pytest.mark.chain
def test_loadgen_s_own_transactions_wait_for_room_in_a_full_pool(monkeypatch):
    # room for 9 transactions on the node, whoever sent them
    pool = TxpoolSettings(account_slots=1, global_slots=1, account_queue=4, global_queue=8, no_locals=True)
    monkeypatch.delenv("LOADGEN_MNEMONIC", raising=False)
    source = mnemonic_source(DEV_MNEMONIC)
    accounts = [derive_account(source, i).account() for i in range(12)]
    with GethNetwork(GethNetworkSettings(nodes=1, txpool=pool, block_time_s=2)) as net:
        w3 = connect(net.urls[0])
        fees = Fees.legacy(w3.eth.gas_price)

        def tx(i: int, nonce: int, data: bytes = b"") -> bytes:
            return build_transaction(w3, accounts[i], to=accounts[0].address, data=data, nonce=nonce, gas=50_000, fees=fees)

        def sealed() -> int:
            start = w3.eth.block_number
            while w3.eth.block_number == start:
                time.sleep(0.02)
            return start + 1

        # the sealer paused (no block can make room, however slow the machine): nine transfers fill the pool
        w3.provider.make_request(RPCEndpoint("miner_stop"), [])
        for i in range(1, 10):
            w3.eth.send_raw_transaction(tx(i, 0))
        with pytest.raises(ChainStalled, match=r"\(transaction underpriced\): its pool stays full"):
            submit(w3, tx(10, 0), timeout_s=0.5)
        full_at = w3.eth.block_number
        w3.provider.make_request(RPCEndpoint("miner_start"), [])
        receipt = wait_receipts(w3, [submit(w3, tx(10, 0))])[0]
        assert receipt["status"] == 1 and receipt["blockNumber"] >= full_at + 2  # after the block that made room

        # a nonce already taken at the same price: waiting cannot help, it fails at once
        sealed()
        w3.eth.send_raw_transaction(tx(11, 0, b"\1"))
        with pytest.raises(RpcError, match="replacement transaction underpriced"):
            submit(w3, tx(11, 0, b"\2"))


@pytest.mark.usefixtures("tight_network")  # for its Ray and mnemonic
@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.solo  # what was sent lands within the stop's grace: on a busy machine, only if nothing else runs beside it
def test_a_run_stopped_early_lets_what_it_sent_land_before_it_ends(tmp_path):
    # ten chunks a block: what 8 workers sent in the stop's first second takes several blocks to land
    with GethNetwork(GethNetworkSettings(nodes=1, block_gas_limit=6_000_000)) as net:

        def enough(p: Progress) -> str | None:
            return "enough" if p.phase == "reveal" and p.stats.sent >= 8 + 24 else None

        experiment = fl(net.urls, model_length=20_000, pace_s=0.05)
        result = Run(experiment, tmp_path, metrics_port=0, metrics_linger_s=0, should_stop=enough).execute()
        table = pq.read_table(result.run_dir / "transactions.parquet")
        assert result.summary["stopped_early"] == "enough"
        counts = statuses(table)
        assert "dropped" not in counts and counts["committed"] >= 8 + 24, counts
        assert rpc_call(net.urls[0], "txpool_status")["pending"] == "0x0"
        assert_the_chain_agrees(connect(net.urls[0]), table)


@pytest.mark.usefixtures("tight_network")  # for its Ray and mnemonic
@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.solo  # the pools overflow only if the senders keep a 0.05 s pace, which a busy machine does not
def test_the_search_finds_a_pace_the_small_pools_take(tmp_path):
    # A network of its own, with the pools of the quick Fig. 2 (96 transactions a node): the
    # module's tighter one keeps what the overflow test left stuck behind its nonce gaps.
    txpool = TxpoolSettings(account_slots=4, global_slots=64, account_queue=8, global_queue=32, no_locals=True)
    with GethNetwork(GethNetworkSettings(nodes=4, txpool=txpool)) as net:
        # 16 workers sending 20 chunks: 80 a node, more than its pool holds (32 chunks) when four
        # workers a node send faster than about one every 0.125 s. A chunk refused 4 times running
        # is given up: with many more retries, a machine fast enough catches up after the burst,
        # and even the fastest pace passes.
        state = Search(
            fl(net.urls, model_length=20_000, redundancy=8, max_retries=3),
            tmp_path,
            lo=0.05,
            hi=0.5,
            tolerance=0.8,
            run_options={"metrics_port": 0, "metrics_linger_s": 0},
        ).execute()
    assert state.min_value is not None and 0.05 < state.min_value <= 0.5, state.notes
    passed = [p.value for p in state.probes if p.verdict == "pass"]
    failed = [p.value for p in state.probes if p.verdict == "fail"]
    assert failed and passed and state.min_value == min(passed)
    assert max(v for v in failed if v < state.min_value) < state.min_value  # a slower pace passed where a faster one failed


@pytest.mark.chain
def test_a_node_whose_port_is_taken_before_it_starts_still_gives_a_running_network(monkeypatch):
    real = gethnet.free_port
    with socket.socket() as squatter:
        squatter.bind(("", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        chosen: list[int] = []

        def unlucky(host: str, ports: set[int]) -> int:
            # the first port chosen is taken by another process before the node listens there
            port = taken if not chosen else real(host, ports)
            chosen.append(port)
            return port

        monkeypatch.setattr(gethnet, "free_port", unlucky)
        with GethNetwork(GethNetworkSettings(nodes=2)) as net:
            assert taken not in [p.http for p in net.ports]
            assert int(rpc_call(net.urls[0], "net_peerCount"), 16) == 1
    assert chosen[0] == taken and len(chosen) == 2 * 2 * 4  # a second start on new ports

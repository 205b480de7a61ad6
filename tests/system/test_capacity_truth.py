"""At and past capacity the record must equal the chain: value transfers offered to a 4-node
network well beyond what it includes, until blocks hold thousands of transactions and the
senders' pools back up, then every block read again and set beside the rows.

geth 1.10.3 clique here (make test); GoQuorum QBFT the same way (make test-goquorum).
"""

from __future__ import annotations

import pytest

from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.chains.nodeproc import rpc_call
from tests.support.runs import local_ray, transfers_past_capacity

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.slow, pytest.mark.solo]  # four nodes at capacity: the machine's


def assert_the_record_is_the_chain(summary: dict, audit, rate_tps: float, duration_s: float, block_s: float) -> None:
    assert audit.scheduled == summary["scheduled"] == rate_tps * duration_s  # one row per scheduled transaction
    # past capacity: a block holding more than one block period of the offered load means the
    # network fell behind and caught up in big blocks (how far past depends on the machine)
    assert audit.largest_block > rate_tps * block_s, audit
    assert audit.missed == 0, audit  # nothing the chain holds is called dropped, unsent or rejected
    assert audit.phantom == 0, audit  # nothing recorded committed that the chain lacks or has in another block
    assert audit.twice == 0, audit
    assert audit.committed == audit.on_chain == summary["committed"] + summary["reverted"]
    assert audit.record_p50_s is not None and audit.announced_p50_s is not None and audit.chain_p50_s is not None
    # the watchers keep up: within a block interval of when the node they read first had the
    # blocks, polled from a process of the test's own (block timestamps are whole seconds, set
    # when a block is begun, and a node short of CPU imports it seconds later: a lower bound only)
    assert abs(audit.record_p50_s - audit.announced_p50_s) <= block_s, audit
    assert audit.record_p50_s >= audit.chain_p50_s - 1, audit


def test_geth_clique_past_capacity_the_record_is_the_chain(tmp_path):
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(GethNetworkSettings(nodes=4)) as net:
        summary, audit = transfers_past_capacity(net.urls, tmp_path, rate_tps=800, duration_s=20)
    assert summary["confirmations"] == 3  # clique: its signers fork under this load
    assert_the_record_is_the_chain(summary, audit, 800, 20, block_s=1.0)


@pytest.mark.goquorum
def test_goquorum_qbft_past_capacity_the_record_is_the_chain(tmp_path):
    settings = GethNetworkSettings(nodes=4, consensus="qbft", gas_price=0, block_gas_limit=700_000_000)
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(settings) as net:
        summary, audit = transfers_past_capacity(net.urls, tmp_path, rate_tps=900, duration_s=30)
    assert summary["confirmations"] == 0  # QBFT's blocks are final
    assert_the_record_is_the_chain(summary, audit, 900, 30, block_s=1.0)


def test_an_observer_follows_without_sealing_and_the_watchers_read_from_it(tmp_path):
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(GethNetworkSettings(nodes=2, observers=1)) as net:
        (observer,) = net.observer_urls
        assert net.urls == net.all_urls[:2]
        # a clique of the two validators: the observer's node is not a signer
        signers = rpc_call(observer, "clique_getSigners", ["latest"])
        assert sorted(s.lower() for s in signers) == sorted(i.signer.lower() for i in net.identities[:2])
        summary, audit = transfers_past_capacity(net.urls, tmp_path, rate_tps=100, duration_s=5, watch=[observer])
        head = int(rpc_call(net.urls[0], "eth_blockNumber"), 16)
        assert (
            rpc_call(observer, "eth_getBlockByNumber", [hex(head - 1), False])["hash"]
            == (rpc_call(net.urls[0], "eth_getBlockByNumber", [hex(head - 1), False])["hash"])
        )
    assert summary["watch_endpoints"] == [observer]
    assert list(summary["watcher_receipts"]) == [observer]  # the watcher read every block there
    assert audit.missed == audit.phantom == audit.twice == 0, audit
    assert audit.committed == audit.scheduled == summary["committed"] == 500

"""At and past capacity the record must equal the chain: value transfers offered to a 4-node
network well beyond what it includes, until blocks hold thousands of transactions and the
senders' pools back up, then every block read again and set beside the rows.

geth 1.10.3 clique here (make test); GoQuorum QBFT the same way (make test-goquorum).
"""

from __future__ import annotations

import pytest

from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from tests.engine import local_ray, transfers_past_capacity

pytestmark = [pytest.mark.chain, pytest.mark.ray, pytest.mark.slow]


def assert_the_record_is_the_chain(summary: dict, audit, rate_tps: float, duration_s: float, block_s: float) -> None:
    assert audit.scheduled == summary["scheduled"] == rate_tps * duration_s  # one row per scheduled transaction
    assert audit.largest_block >= 1_000, audit  # past capacity: the network fell behind and caught up in big blocks
    assert audit.missed == 0, audit  # nothing the chain holds is called dropped, unsent or rejected
    assert audit.phantom == 0, audit  # nothing recorded committed that the chain lacks or has in another block
    assert audit.twice == 0, audit
    assert audit.committed == audit.on_chain == summary["committed"] + summary["reverted"]
    assert audit.record_p50_s is not None and audit.chain_p50_s is not None
    # the chain's side is a lower bound: block timestamps are whole seconds, set when the block
    # is begun, before its thousands of transactions are executed and it is sealed
    assert abs(audit.record_p50_s - audit.chain_p50_s) <= block_s + 1.0, audit


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

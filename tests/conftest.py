from __future__ import annotations

import pytest

from loadgen import contracts
from loadgen.accounts import MnemonicSource, derive_account
from loadgen.chain import connect
from loadgen.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.protocol import Coordinator, Worker


@pytest.fixture(scope="session")
def instant_chain():
    """Anvil mining one block per transaction: protocol tests need the rules, not the pace."""
    with Devnet(DevnetSettings(block_time_s=0)) as node:
        yield node


@pytest.fixture(scope="session")
def w3(instant_chain):
    return connect(instant_chain.url)


@pytest.fixture(scope="session")
def dev_accounts():
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    return [derive_account(source, i) for i in range(12)]


@pytest.fixture
def fl(w3, dev_accounts):
    """A fresh FederatedLearning contract per test, so rounds never interfere."""
    return contracts.deploy(w3, dev_accounts[0], "FederatedLearning")


@pytest.fixture
def coordinator(w3, dev_accounts, fl):
    return Coordinator(w3, dev_accounts[0], fl)


@pytest.fixture
def workers(w3, dev_accounts, fl):
    return [Worker(w3, a, fl) for a in dev_accounts[1:]]

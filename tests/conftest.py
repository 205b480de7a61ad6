from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from loadgen.chains import contracts
from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.workloads.fl_round.protocol import Coordinator, PoolMember
from tests.support.runs import local_ray

# generated inputs: a thousand each in `make test` (and CI), a hundred in `make test-fast`
_QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile("full", max_examples=1_000, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("fast", max_examples=100, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "full"))


@pytest.fixture(scope="session")
def instant_chain():
    """Anvil mining one block per transaction: protocol tests need the rules, not the pace."""
    with Devnet(DevnetSettings(block_time_s=0)) as node:
        yield node


@pytest.fixture(scope="module")
def chain():
    """A module's Ray and an Anvil with quarter-second blocks: the engine's tests run on it."""
    with local_ray(DEV_MNEMONIC), Devnet(DevnetSettings(block_time_s=0.25)) as node:
        yield node


@pytest.fixture(scope="session")
def w3(instant_chain):
    return connect(instant_chain.url)


@pytest.fixture(scope="session")
def dev_accounts():
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    return [derive_account(source, i).account() for i in range(12)]


@pytest.fixture
def fl(w3, dev_accounts):
    """A fresh FederatedLearning contract per test, so rounds never interfere."""
    return contracts.deploy(w3, dev_accounts[0], "FederatedLearning")


@pytest.fixture
def coordinator(w3, dev_accounts, fl):
    return Coordinator(w3, dev_accounts[0], fl)


@pytest.fixture
def workers(w3, dev_accounts, fl):
    return [PoolMember(w3, a, fl) for a in dev_accounts[1:]]


# -- every test says what it needs ------------------------------------------------------------
# The markers are registered in pyproject.toml. `make test-fast` runs `-m unit`; a test that is
# none of these kinds would silently fall out of every selection, so collection refuses it.
KINDS = ("unit", "subprocess", "chain", "ray")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an unmarked test is caught whatever the selection
def pytest_collection_modifyitems(config, items):
    def has(item, name):
        return item.get_closest_marker(name) is not None

    unmarked = [item.nodeid for item in items if not any(has(item, k) for k in KINDS)]
    mixed = [item.nodeid for item in items if has(item, "unit") and any(has(item, k) for k in KINDS if k != "unit")]
    problems = []
    if unmarked:
        problems.append(
            "these tests have none of the markers " + ", ".join(KINDS) + " (add `pytestmark = [...]` to the module or a "
            "@pytest.mark.<kind> to the test; see [tool.pytest.ini_options] markers in pyproject.toml):\n  " + "\n  ".join(unmarked)
        )
    if mixed:
        problems.append("these tests are marked unit and also subprocess, chain or ray (a unit test needs none):\n  " + "\n  ".join(mixed))
    if problems:
        raise pytest.UsageError("\n".join(problems))

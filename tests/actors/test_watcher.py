"""The block watcher: timestamps (GoQuorum Raft writes nanoseconds, IBFT/QBFT and Clique
seconds), and hearing of blocks by subscription or by polling."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from actors.watcher import BlockWatcher
from loadgen.chains.blocktime import timestamp_seconds
from loadgen.chains.devnet import Devnet, DevnetSettings
from tests.support.faults import FaultProxy, Faults


@pytest.mark.unit
def test_seconds_stay_seconds():
    assert timestamp_seconds(1_700_000_000) == 1_700_000_000.0


@pytest.mark.unit
def test_raft_nanoseconds_become_seconds():
    assert timestamp_seconds(1_700_000_000_123_456_789) == 1_700_000_000.1234567


@pytest.mark.unit
def test_small_devnet_timestamps_are_seconds():
    assert timestamp_seconds(0) == 0.0
    assert timestamp_seconds(5) == 5.0


async def watch(url: str, poll_interval_s: float, blocks_wanted: int, timeout_s: float = 15.0) -> tuple[bool, list]:
    """The blocks a watcher hands over until it has ``blocks_wanted`` of them (or the timeout)."""
    watcher = BlockWatcher([url], poll_interval_s)
    await watcher.start()
    blocks: list = []
    deadline = time.monotonic() + timeout_s
    while len(blocks) < blocks_wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        blocks += watcher.take().blocks
    subscribed = watcher.subscribed
    await watcher.stop()
    return subscribed, blocks


def consecutive(blocks: list) -> bool:
    numbers = [b.number for b in blocks]
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


@pytest.mark.chain
def test_a_subscribed_watcher_sees_each_block_when_the_node_announces_it():
    with Devnet(DevnetSettings(block_time_s=0.5)) as node:
        # polling alone, every 30 s, would see one block in the 15 s it is given
        subscribed, blocks = asyncio.run(watch(node.url, poll_interval_s=30.0, blocks_wanted=6))
    assert subscribed
    assert len(blocks) >= 6 and consecutive(blocks)
    gaps = np.diff([b.t_observed for b in blocks])
    assert 0.3 < float(np.median(gaps)) < 0.7  # one by one as the node makes them, not in batches


@pytest.mark.chain
def test_without_a_websocket_the_watcher_polls():
    with Devnet(DevnetSettings(block_time_s=0.5)) as node, FaultProxy(node.url, Faults()) as proxy:
        subscribed, blocks = asyncio.run(watch(proxy.url, poll_interval_s=0.05, blocks_wanted=4))
    assert not subscribed  # the proxy speaks HTTP only
    assert len(blocks) >= 4 and consecutive(blocks)

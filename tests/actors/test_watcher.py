"""The block watcher: timestamps (GoQuorum Raft writes nanoseconds, IBFT/QBFT and Clique
seconds), and hearing of blocks by subscription or by polling."""

from __future__ import annotations

import asyncio

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


async def watch(url: str, poll_interval_s: float, seconds: float) -> tuple[bool, list]:
    watcher = BlockWatcher([url], poll_interval_s)
    await watcher.start()
    await asyncio.sleep(seconds)
    subscribed = watcher.subscribed
    blocks = watcher.take().blocks
    await watcher.stop()
    return subscribed, blocks


@pytest.mark.chain
def test_a_subscribed_watcher_sees_each_block_when_the_node_announces_it():
    with Devnet(DevnetSettings(block_time_s=0.5)) as node:
        # polling alone, every 30 s, would see no block in 4 s
        subscribed, blocks = asyncio.run(watch(node.url, poll_interval_s=30.0, seconds=4.0))
    assert subscribed
    assert len(blocks) >= 6
    gaps = np.diff([b.t_observed for b in blocks])
    assert 0.3 < float(np.median(gaps)) < 0.7  # one by one as the node makes them, not in batches


@pytest.mark.chain
def test_without_a_websocket_the_watcher_polls():
    with Devnet(DevnetSettings(block_time_s=0.5)) as node, FaultProxy(node.url, Faults()) as proxy:
        subscribed, blocks = asyncio.run(watch(proxy.url, poll_interval_s=0.05, seconds=3.0))
    assert not subscribed  # the proxy speaks HTTP only
    assert len(blocks) >= 4

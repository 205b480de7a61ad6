"""Block timestamps: GoQuorum Raft writes nanoseconds, IBFT/QBFT and Clique seconds."""

from __future__ import annotations

import pytest

from actors.watcher import timestamp_seconds

pytestmark = pytest.mark.unit


def test_seconds_stay_seconds():
    assert timestamp_seconds(1_700_000_000) == 1_700_000_000.0


def test_raft_nanoseconds_become_seconds():
    assert timestamp_seconds(1_700_000_000_123_456_789) == 1_700_000_000.1234567


def test_small_devnet_timestamps_are_seconds():
    assert timestamp_seconds(0) == 0.0
    assert timestamp_seconds(5) == 5.0

"""Why a phase lost what the nodes accepted: the causes said from what the run saw."""

from __future__ import annotations

import pytest

from loadgen.engine.diagnosis import PhaseOutcome, diagnose

pytestmark = pytest.mark.unit


def outcome(**changes) -> PhaseOutcome:
    base = {"phase": "reveal", "epoch": 0, "accepted": 100, "dropped": 60, "stranded": 0, "forgotten": 0, "unconfirmed": 0,
            "full_blocks": 0.0, "pools_left": 0}  # fmt: skip
    return PhaseOutcome(**(base | changes))


def test_a_phase_that_lost_half_or_less_is_not_diagnosed():
    assert diagnose(outcome(dropped=50)) is None
    assert diagnose(outcome(accepted=0, dropped=0)) is None


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"stranded": 40}, "40 waited behind a nonce"),
        ({"forgotten": 7}, "the nodes forgot 7 accepted"),
        ({"unconfirmed": 3}, "3 sends had their answer lost"),
        ({"full_blocks": 0.8}, "80% of the blocks were full"),
        ({"pools_left": 12}, "the pools still held 12"),
        ({}, "dropped them without a word"),
    ],
)
def test_each_observation_is_named_as_a_likely_cause(changes, says):
    diagnosis = diagnose(outcome(**changes))
    assert diagnosis is not None
    assert any(says in c for c in diagnosis.causes)
    assert diagnosis.line().startswith("reveal (epoch 0): 60 of 100 accepted were never included; ")

"""The study's schedule (workload.schedule: study): commitments spread over a window, reveals due
from a fixed second whether or not the commitments are in, the commit phase closed at the
window's end by the coordinator while the workers send; what the contract refuses reverts."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.common.errors import ConfigError
from loadgen.engine.plan import HeadThenPaced
from loadgen.workloads.fl_round.workload import Round
from tests.support.runs import assert_one_row_per_attempt, assert_the_chain_agrees, execute, fl_experiment, local_ray, statuses

WORKERS = 4  # two pools of two
CHUNKS = 3


def study(urls: list[str], key_offset: int, **workload):
    fields = {"model_length": CHUNKS * 1_000, "pace_s": 0.5, "schedule": "study", "commit_window_s": 2.0} | workload
    return fl_experiment(urls, run={"key_offset": key_offset, "commit_timeout_s": 15}, **fields)


@pytest.mark.unit
def test_the_study_s_schedule_is_one_phase_commitment_first_then_the_chunks_from_a_fixed_time():
    (phase,) = study(["http://a"], 0, reveal_at_s=6.0, commit_window_s=5.0).plugin.phases(None, 0)
    schedule = phase.schedule
    assert isinstance(schedule, HeadThenPaced)
    assert phase.name == "round" and phase.items == (1 + CHUNKS,) * WORKERS
    heads = [phase.slot_time(0.0, w, 0) for w in range(WORKERS)]
    assert heads == [0.0, 1.25, 2.5, 3.75]  # spread evenly over the 5 s window
    firsts = [phase.slot_time(0.0, w, 1) for w in range(WORKERS)]
    assert firsts == pytest.approx([6.0, 6.125, 6.25, 6.375])  # from second 6, staggered over one pace
    assert np.diff([phase.slot_time(0.0, 1, k) for k in range(1, 1 + CHUNKS)]) == pytest.approx([0.5] * (CHUNKS - 1))
    assert phase.gas_fixed  # the node's estimate of a commitment would starve the chunks


@pytest.mark.unit
def test_a_study_round_s_item_zero_is_the_commitment_and_the_rest_are_the_chunks():
    builder = Round(contract="0x" + "11" * 20, seed=1, model_length=2_000, chunk_size=1_000, round_id=7).builder()
    worker = study(["http://a"], 0).plan(["http://a"], 1).workers[0]
    address = "0x" + "22" * 20
    assert builder.call(worker, address, 0) == builder.commit.call(worker, address, 0)
    assert builder.call(worker, address, 2) == builder.reveal.call(worker, address, 1)
    assert builder.call(worker, address, 0).data[:4] != builder.call(worker, address, 1).data[:4]


@pytest.mark.unit
def test_reveals_due_inside_the_commit_window_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"workload.reveal_at_s.*not after the commit window \(5 s\)"):
        study(["http://a"], 0, commit_window_s=5.0, reveal_at_s=4.0)


@pytest.fixture(scope="module")
def network():
    with local_ray(mnemonic=DEV_MNEMONIC), GethNetwork(GethNetworkSettings(nodes=2)) as net:
        yield net


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.solo  # the coordinator's timed close races the reveals by design
def test_with_room_after_the_window_every_transaction_commits_and_the_pools_elect(network, tmp_path):
    # room: the last commitment is due 2 s (two block periods) before the close, which a
    # commitment sent through the other node must reach first; 0.5 s once lost that race in CI
    result, table = execute(study(network.urls, 20_000, commit_window_s=8.0, reveal_at_s=9.0), tmp_path)
    assert statuses(table) == {"committed": WORKERS * (1 + CHUNKS)}
    assert [p["expected"] for p in result.summary["rounds"][0]["pools"]] == [True, True]
    assert set(table.column("phase").to_pylist()) == {"round"}
    # each worker's commitment inside the window, its first chunk from second 9
    t0 = pc.min(table.column("t_scheduled")).as_py()
    heads = table.filter(pc.equal(table.column("chunk_index"), 0)).column("t_scheduled").to_numpy() - t0
    chunks = table.filter(pc.greater(table.column("chunk_index"), 0)).column("t_scheduled").to_numpy() - t0
    assert heads.max() < 8.0 <= 9.0 <= chunks.min()
    assert_the_chain_agrees(connect(network.urls[0]), table)


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.solo  # the coordinator's timed close races the reveals by design
def test_reveals_due_before_the_close_lands_revert_and_are_counted_as_the_chain_holds_them(network, tmp_path):
    # the close is sent at 2 s and lands a block later; the first chunks are due from 2.1 s:
    # the contract refuses a reveal before its phase (and every later chunk of that worker, out
    # of order), as it would on the study's network
    _, table = execute(study(network.urls, 21_000, reveal_at_s=2.1), tmp_path)
    counts = statuses(table)
    assert counts.get("reverted", 0) > 0, counts
    # every commitment landed; one sent late in the window may land after the close and revert
    commitments = statuses(table.filter(pc.equal(table.column("chunk_index"), 0)))
    assert set(commitments) <= {"committed", "reverted"} and sum(commitments.values()) == WORKERS, commitments
    assert_one_row_per_attempt(table, planned=WORKERS * (1 + CHUNKS))
    assert_the_chain_agrees(connect(network.urls[0]), table)

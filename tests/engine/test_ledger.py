"""The driver's ledger of a running phase: what a lost actor's replacement must not write again."""

from __future__ import annotations

import itertools
import random

import pyarrow as pa
import pytest

from loadgen.engine.ledger import FloorSet, PhaseLedger
from tests.support.runs import synthetic_rows

pytestmark = pytest.mark.unit


def test_a_floor_set_given_numbers_nearly_in_order_holds_only_the_window_beyond_its_floor():
    numbers = list(range(10_000))
    rng = random.Random(7)
    for i in range(0, len(numbers), 8):  # shuffled within windows of 8, as rows finalize out of order
        window = numbers[i : i + 8]
        rng.shuffle(window)
        numbers[i : i + 8] = window
    floor_set = FloorSet()
    peak = 0
    for n in numbers:
        floor_set.add(n)
        peak = max(peak, len(floor_set.above))
    assert floor_set.floor == 10_000 and not floor_set.above
    assert 0 < peak < 8
    assert 9_999 in floor_set and 10_000 not in floor_set


def test_a_floor_set_with_holes_answers_membership_and_the_missing_in_order():
    floor_set = FloorSet()
    for n in (0, 1, 2, 4, 5, 9):
        floor_set.add(n)
    assert floor_set.floor == 3 and floor_set.above == {4, 5, 9}
    assert [n for n in range(11) if n in floor_set] == [0, 1, 2, 4, 5, 9]
    assert list(itertools.islice(floor_set.missing_from(0), 4)) == [3, 6, 7, 8]
    assert list(itertools.islice(floor_set.missing_from(7), 3)) == [7, 8, 10]
    floor_set.add(3)
    assert floor_set.floor == 6 and floor_set.above == {9}


def test_the_ledger_keeps_each_worker_s_stored_chunks_retries_and_included_nonces():
    table = synthetic_rows("r", n=50, seed=3)
    table = table.set_column(table.schema.get_field_index("worker"), "worker", pa.array([i % 2 for i in range(50)], pa.int32()))
    table = table.set_column(table.schema.get_field_index("chunk_index"), "chunk_index", pa.array([i // 2 for i in range(50)], pa.int32()))
    attempts = [2 if i == 10 else 1 for i in range(50)]
    table = table.set_column(table.schema.get_field_index("attempt"), "attempt", pa.array(attempts, pa.int16()))
    ledger = PhaseLedger(0, "reveal")
    ledger.add(table.slice(0, 25))
    ledger.add(table.slice(25))
    ledger.add(table.set_column(table.schema.get_field_index("phase"), "phase", pa.array(["commit"] * 50)))  # another phase
    records = ledger.of([0, 1, 2])
    rows = table.to_pylist()
    for w in (0, 1):
        mine = [r for r in rows if r["worker"] == w]
        assert all(r["chunk_index"] in records[w].chunks for r in mine)
        included = {r["nonce"] for r in mine if r["status"] in ("committed", "reverted")}
        assert {r["nonce"] for r in mine if r["nonce"] in records[w].included} == included
    assert records[0].attempts(5) == 2 and records[0].attempts(6) == 1 and records[0].attempts(999) == 0
    assert records[0].chunks.floor == 25 and not records[0].chunks.above
    assert records[2].chunks.floor == 0 and not records[2].chunks.above


def test_nonces_from_the_phase_s_base_on_are_held_as_a_floor():
    table = synthetic_rows("r", n=30, seed=1)
    table = table.set_column(table.schema.get_field_index("worker"), "worker", pa.array([0] * 30, pa.int32()))
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(["committed"] * 30))
    table = table.set_column(table.schema.get_field_index("nonce"), "nonce", pa.array(range(1_000, 1_030), pa.int64()))
    ledger = PhaseLedger(0, "reveal", bases={0: 1_000})
    ledger.add(table)
    (record,) = ledger.of([0]).values()
    assert record.included.floor == 1_030 and not record.included.above

"""What the driver has stored of the phase that runs, per worker: enough for the replacement of
a lost sender actor to rebuild the rows the lost one never handed over, and none twice.

Rows arrive nearly in order, so each set is held as a floor (everything below it is in) and the
few above it: a phase of any length costs about the transactions in flight, not one entry a row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class FloorSet:
    floor: int = 0  # every number below it is in the set
    above: set[int] = field(default_factory=set)

    def add(self, n: int) -> None:
        if n < self.floor:
            return
        self.above.add(n)
        while self.floor in self.above:
            self.above.discard(self.floor)
            self.floor += 1

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and (n < self.floor or n in self.above)

    def missing_from(self, start: int) -> Iterator[int]:
        """The numbers from ``start`` on that are not in the set, in order (without end)."""
        n = max(start, self.floor)
        while True:
            if n not in self.above:
                yield n
            n += 1


@dataclass
class WorkerRecord:
    chunks: FloorSet = field(default_factory=FloorSet)  # chunk indices with a stored row
    retried: dict[int, int] = field(default_factory=dict)  # chunk index → highest attempt stored, when above 1
    included: FloorSet = field(default_factory=FloorSet)  # nonces stored as committed or reverted

    def attempts(self, chunk: int) -> int:
        """Rows stored for a chunk (0, 1, or its highest attempt)."""
        return self.retried.get(chunk, 1 if chunk in self.chunks else 0)


class PhaseLedger:
    """Also counts the phase's rows by status, and those dropped as never includable (what a
    diagnosis of the phase needs)."""

    def __init__(self, epoch: int, phase: str, bases: dict[int, int] | None = None) -> None:
        self.epoch = epoch
        self.phase = phase
        self.bases = bases or {}  # each worker's nonce at the phase's start: where its nonces begin
        self.workers: dict[int, WorkerRecord] = {}
        self.statuses: Counter[str] = Counter()
        self.stranded = 0

    def add(self, table: pa.Table) -> None:
        mine = table.filter(pc.and_(pc.equal(table.column("epoch"), self.epoch), pc.equal(table.column("phase"), self.phase)))
        self.statuses.update(mine.column("status").to_pylist())
        self.stranded += int(pc.sum(pc.starts_with(pc.fill_null(mine.column("error"), ""), "never includable")).as_py() or 0)
        columns = (mine.column(c).to_pylist() for c in ("worker", "chunk_index", "attempt", "nonce", "status"))
        for worker, chunk, attempt, nonce, status in zip(*columns, strict=True):
            record = self.workers.get(worker) or self.workers.setdefault(worker, self._record(worker))
            record.chunks.add(chunk)
            if attempt > 1:
                record.retried[chunk] = max(record.retried.get(chunk, 0), attempt)
            if status in ("committed", "reverted"):
                record.included.add(nonce)

    def of(self, workers: list[int]) -> dict[int, WorkerRecord]:
        return {w: self.workers.get(w) or self._record(w) for w in workers}

    def _record(self, worker: int) -> WorkerRecord:
        return WorkerRecord(included=FloorSet(floor=self.bases.get(worker, 0)))

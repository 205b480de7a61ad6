"""Workload → per-worker schedule. Pure: needs neither Ray nor a chain.

A phase gives every worker a series of *slots*, at ``t0 + offset + k·interval`` (computed from
k, never accumulated, so a long run does not drift). In each slot the worker sends the head of
its queue of *items* (a commitment, a chunk, a copy call). An item the RPC rejects stays at the
head and is sent again in the next slot, so its later items shift by one slot and the offered
rate stays one transaction per worker per interval; after ``max_retries`` re-sends the worker
gives up and its remaining items end as ``unsent``. Every slot used is one transaction row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadgen.config import ArrayCopy, Experiment, FlRound
from loadgen.model import chunk_count

COMMIT_GAS = 120_000
REVEAL_BASE_GAS = 100_000
REVEAL_GAS_PER_VALUE = 700  # measured ~565 per value for 1,000-value chunks (BENCHMARKS.md), with headroom
DEFAULT_COPY_GAS = 30_000_000


@dataclass(frozen=True)
class WorkerSpec:
    worker: int  # 0 … N-1
    key_index: int  # derivation index of its key; 0 is the coordinator's
    pool: int  # -1 when the workload has no pools
    endpoint: str
    actor: int


@dataclass(frozen=True)
class PhaseSpec:
    name: str  # "commit", "reveal" or "array-copy"
    interval_s: float  # between two slots of one worker
    offsets_s: tuple[float, ...]  # per worker, from the phase's t0
    items: tuple[int, ...]  # per worker: transactions it has to get accepted
    max_retries: int | None  # re-sends of one rejected item before giving up; None: no limit
    fixed_slots: bool  # True: exactly items[w] slots whatever is rejected (a fixed-rate workload)
    gas_limit: int

    def slot_time(self, t0: float, worker: int, slot: int) -> float:
        return t0 + self.offsets_s[worker] + slot * self.interval_s

    @property
    def transactions(self) -> int:
        """Transactions scheduled when nothing is rejected."""
        return sum(self.items)

    @property
    def duration_s(self) -> float:
        return max((o + (n - 1) * self.interval_s for o, n in zip(self.offsets_s, self.items, strict=True) if n), default=0.0)


@dataclass(frozen=True)
class RunPlan:
    workers: tuple[WorkerSpec, ...]
    phases: tuple[PhaseSpec, ...]  # one epoch's phases, in order
    epochs: int

    @property
    def transactions(self) -> int:
        return self.epochs * sum(p.transactions for p in self.phases)

    @property
    def send_duration_s(self) -> float:
        """Time spent sending, without waits for inclusion between phases."""
        return self.epochs * sum(p.duration_s for p in self.phases)

    def workers_of(self, actor: int) -> list[WorkerSpec]:
        return [w for w in self.workers if w.actor == actor]


def assign_workers(
    n_workers: int, pool_size: int | None, endpoints: list[str], n_actors: int, key_offset: int = 0
) -> tuple[WorkerSpec, ...]:
    """Round robin: worker i talks to endpoint i mod E and lives in actor i mod A; its key is
    index 1 + key_offset + i of the mnemonic (0 is the coordinator's)."""
    return tuple(
        WorkerSpec(
            worker=i,
            key_index=1 + key_offset + i,
            pool=i // pool_size if pool_size else -1,
            endpoint=endpoints[i % len(endpoints)],
            actor=i % n_actors,
        )
        for i in range(n_workers)
    )


def reveal_gas(chunk_size: int) -> int:
    return REVEAL_BASE_GAS + REVEAL_GAS_PER_VALUE * chunk_size


def fl_phases(w: FlRound, gas_limit: int | None) -> tuple[PhaseSpec, ...]:
    n = w.workers
    # The study's workers all send their commitment at once when the round opens.
    commit = PhaseSpec("commit", w.pace_s, (0.0,) * n, (1,) * n, w.max_retries, False, gas_limit or COMMIT_GAS)
    spread = tuple(w.pace_s * i / n for i in range(n)) if w.spread else (0.0,) * n
    chunks = chunk_count(w.model_length, w.chunk_size)
    reveal = PhaseSpec("reveal", w.pace_s, spread, (chunks,) * n, w.max_retries, False, gas_limit or reveal_gas(w.chunk_size))
    return commit, reveal


def array_copy_phase(w: ArrayCopy, gas_limit: int | None) -> PhaseSpec:
    """Worker i sends at i/rate + k·workers/rate: together, rate_tps for duration_s."""
    interval = w.workers / w.rate_tps
    offsets = tuple(i / w.rate_tps for i in range(w.workers))
    # the slots that start before duration_s (the epsilon keeps float error from adding one)
    items = tuple(max(math.ceil((w.duration_s - o) / interval - 1e-9), 0) for o in offsets)
    return PhaseSpec("array-copy", interval, offsets, items, None, True, gas_limit or DEFAULT_COPY_GAS)


def build(experiment: Experiment, endpoints: list[str], n_actors: int) -> RunPlan:
    w = experiment.workload
    gas_limit = experiment.chain.gas_limit
    if isinstance(w, FlRound):
        workers = assign_workers(w.workers, w.redundancy, endpoints, n_actors, experiment.run.key_offset)
        return RunPlan(workers, fl_phases(w, gas_limit), w.epochs)
    workers = assign_workers(w.workers, None, endpoints, n_actors, experiment.run.key_offset)
    return RunPlan(workers, (array_copy_phase(w, gas_limit),), 1)


@dataclass(frozen=True)
class Payload:
    """What a phase's transactions carry; actors build the calldata from it themselves, so no
    model crosses Ray."""

    kind: str  # "commit", "reveal" or "array-copy"
    contract: str
    epoch: int = 0
    round_id: int = 0
    seed: int = 0
    model_length: int = 0
    chunk_size: int = 0
    array_size: int = 0

"""Schedules: who sends what, when. Pure: needs neither Ray nor a chain, and knows no workload.

A phase gives every worker a series of *slots*; the phase's schedule says when slot k of worker
w falls, from the phase's start t0 (computed from k, never accumulated, so a long run does not
drift). In each slot the worker sends the head of its queue of *items* (a commitment, a chunk, a
call). With ``fixed_slots`` off, an item the RPC rejects stays at the head and is sent again in
the next slot, so its later items shift by one slot and the offered rate stays one transaction
per worker per slot; after ``max_retries`` re-sends the worker gives up and its remaining items
end as ``unsent``. With ``fixed_slots`` on (rate-driven workloads) a phase has exactly its
planned slots: a refused transaction still goes again, the same bytes in the next slot (its nonce
is still the one the node needs), but no slot is added for it, so the offered rate never exceeds
the plan. Every slot used is one transaction row.

Workloads build their phases from the helpers here: ``paced`` (a worker sends every pace_s),
``head_then_paced`` (one first item in a window, the rest paced from a fixed time),
``constant_rate`` and ``profiled`` (a total arrival rate spread over the workers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from loadgen.common.errors import ConfigError
from loadgen.engine.profile import RateProfile


@dataclass(frozen=True)
class WorkerSpec:
    worker: int  # 0 … N-1
    key_index: int  # derivation index of its key; 0 is the coordinator's
    pool: int  # -1 when the workload has no pools
    endpoint: str
    actor: int


class Schedule(Protocol):
    def offset(self, worker: int, slot: int) -> float:
        """Seconds from the phase's t0 to the worker's slot."""
        ...

    def last_offset(self, items: tuple[int, ...]) -> float:
        """When the last slot falls, when every worker uses exactly its items."""
        ...


@dataclass(frozen=True)
class Paced:
    """Slot k of worker w at offsets_s[w] + k·interval_s: any number of slots (retries add some)."""

    interval_s: float
    offsets_s: tuple[float, ...]

    def offset(self, worker: int, slot: int) -> float:
        return self.offsets_s[worker] + slot * self.interval_s

    def last_offset(self, items: tuple[int, ...]) -> float:
        return max((o + (n - 1) * self.interval_s for o, n in zip(self.offsets_s, items, strict=True) if n), default=0.0)


@dataclass(frozen=True)
class HeadThenPaced:
    """Slot 0 of worker w at head_offsets_s[w]; slot k ≥ 1 at then_s + offsets_s[w] + (k − 1)·interval_s.
    The paced slots start at ``then_s`` whatever became of the head slots: the study's
    schedule, its commitments spread over a window and its reveals due from a fixed second."""

    head_offsets_s: tuple[float, ...]
    then_s: float
    interval_s: float
    offsets_s: tuple[float, ...]

    def offset(self, worker: int, slot: int) -> float:
        if slot == 0:
            return self.head_offsets_s[worker]
        return self.then_s + self.offsets_s[worker] + (slot - 1) * self.interval_s

    def last_offset(self, items: tuple[int, ...]) -> float:
        return max((self.offset(w, n - 1) for w, n in enumerate(items) if n), default=0.0)


@dataclass(frozen=True)
class Profiled:
    """The arrivals of a rate profile, dealt round robin: arrival j goes to worker j mod W, so
    each worker's own slots stay in order (and so do its nonces). Arrival times are computed
    where they are needed (driver and actors alike, identically), never shipped."""

    profile: RateProfile
    workers: int
    seed: int

    def offset(self, worker: int, slot: int) -> float:
        return float(self._times()[worker + slot * self.workers])

    def last_offset(self, items: tuple[int, ...]) -> float:
        times = self._times()
        return float(times[-1]) if times.size else 0.0

    def items(self) -> tuple[int, ...]:
        n = self._times().size
        return tuple(n // self.workers + (1 if w < n % self.workers else 0) for w in range(self.workers))

    def _times(self) -> np.ndarray:
        # computed once per process and kept on the instance (every send asks for one)
        times = self.__dict__.get("_arrivals")
        if times is None:
            times = self.profile.arrivals(self.seed)
            object.__setattr__(self, "_arrivals", times)
        return times

    def __getstate__(self) -> dict:
        """Pickled (to the actors) without the arrival times: they are recomputed there."""
        return {k: v for k, v in self.__dict__.items() if k != "_arrivals"}


@dataclass(frozen=True)
class PhaseSpec:
    name: str  # recorded in every row of the phase
    schedule: Paced | HeadThenPaced | Profiled
    items: tuple[int, ...]  # per worker: transactions it has to get accepted
    max_retries: int | None  # re-sends of one rejected item before giving up; None: no limit
    fixed_slots: bool  # True: exactly items[w] slots whatever is rejected (a rate-driven workload)
    gas_limit: int  # until the node's estimate replaces it before the phase, unless gas_fixed
    value_wei: int = 0  # sent with each transaction (what the funder must cover beside gas)
    gas_fixed: bool = False  # the experiment set the gas limit: the node's estimate does not replace it

    def slot_time(self, t0: float, worker: int, slot: int) -> float:
        return t0 + self.schedule.offset(worker, slot)

    @property
    def transactions(self) -> int:
        """Transactions scheduled when nothing is rejected."""
        return sum(self.items)

    @property
    def duration_s(self) -> float:
        return self.schedule.last_offset(self.items)

    def worst_case_slots(self, worker: int) -> int:
        """The most slots a worker may use: every item rejected up to its retry limit."""
        n = self.items[worker]
        return n if self.fixed_slots or self.max_retries is None else n * (1 + self.max_retries)


@dataclass(frozen=True)
class RunPlan:
    workers: tuple[WorkerSpec, ...]
    phases: tuple[PhaseSpec, ...]  # one epoch's phases, in order
    epochs: int

    @property
    def transactions(self) -> int:
        return self.epochs * sum(p.transactions for p in self.phases)

    @property
    def fixed_slots(self) -> bool:
        return all(p.fixed_slots for p in self.phases)

    def workers_of(self, actor: int) -> list[WorkerSpec]:
        return [w for w in self.workers if w.actor == actor]

    def check_gas(self, block_gas_limit: int) -> None:
        """A phase whose fixed gas no block holds is refused before anything is sent."""
        for phase in self.phases:
            if phase.gas_fixed and phase.gas_limit > block_gas_limit:
                raise ConfigError(
                    "chain.gas_limit",
                    f"{phase.name} transactions need {phase.gas_limit:,} gas but a block holds {block_gas_limit:,}",
                    "lower chain.gas_limit (or the workload's transaction size)",
                )


def key_index(key_offset: int, worker: int) -> int:
    """The mnemonic index of worker ``worker``'s key (0 is the coordinator's)."""
    return 1 + key_offset + worker


def assign_workers(
    n_workers: int, pool_size: int | None, endpoints: list[str], n_actors: int, key_offset: int = 0
) -> tuple[WorkerSpec, ...]:
    """Round robin: worker i talks to endpoint i mod E and lives in actor i mod A; its key is
    index 1 + key_offset + i of the mnemonic (0 is the coordinator's)."""
    return tuple(
        WorkerSpec(
            worker=i,
            key_index=key_index(key_offset, i),
            pool=i // pool_size if pool_size else -1,
            endpoint=endpoints[i % len(endpoints)],
            actor=i % n_actors,
        )
        for i in range(n_workers)
    )


def paced(
    name: str, workers: int, pace_s: float, items: int, *, spread: bool, max_retries: int | None, gas_limit: int, gas_fixed: bool = False
) -> PhaseSpec:
    """Each worker sends one item every pace_s; ``spread`` staggers the workers' first slots over
    one pace so the offered rate is smooth instead of a burst every pace."""
    offsets = tuple(pace_s * i / workers for i in range(workers)) if spread else (0.0,) * workers
    return PhaseSpec(name, Paced(pace_s, offsets), (items,) * workers, max_retries, False, gas_limit, gas_fixed=gas_fixed)


def head_then_paced(
    name: str,
    workers: int,
    window_s: float,
    then_s: float,
    pace_s: float,
    items: int,
    *,
    spread: bool,
    max_retries: int | None,
    gas_limit: int,
    gas_fixed: bool = False,
) -> PhaseSpec:
    """Each worker's first item spread evenly over ``window_s``, its ``items`` − 1 others one
    every pace_s from ``then_s`` (staggered over one pace with ``spread``)."""
    heads = tuple(window_s * i / workers for i in range(workers))
    offsets = tuple(pace_s * i / workers for i in range(workers)) if spread else (0.0,) * workers
    schedule = HeadThenPaced(heads, then_s, pace_s, offsets)
    return PhaseSpec(name, schedule, (items,) * workers, max_retries, False, gas_limit, gas_fixed=gas_fixed)


def constant_rate(
    name: str, workers: int, rate_tps: float, duration_s: float, *, gas_limit: int, value_wei: int = 0, gas_fixed: bool = False
) -> PhaseSpec:
    """Worker i sends at i/rate + k·workers/rate: together, rate_tps for duration_s."""
    interval = workers / rate_tps
    offsets = tuple(i / rate_tps for i in range(workers))
    # the slots that start before duration_s (the epsilon keeps float error from adding one)
    items = tuple(max(math.ceil((duration_s - o) / interval - 1e-9), 0) for o in offsets)
    return PhaseSpec(name, Paced(interval, offsets), items, None, True, gas_limit, value_wei, gas_fixed)


def profiled(
    name: str, workers: int, profile: RateProfile, seed: int, *, gas_limit: int, value_wei: int = 0, gas_fixed: bool = False
) -> PhaseSpec:
    """A rate that changes over time (or Poisson arrivals), spread over the workers."""
    schedule = Profiled(profile, workers, seed)
    return PhaseSpec(name, schedule, schedule.items(), None, True, gas_limit, value_wei, gas_fixed)

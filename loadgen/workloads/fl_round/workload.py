"""``fl-round``: the study's protocol. A coordinator opens a round; every worker commits to its
pool's model; the coordinator closes the commit phase; every worker reveals the model chunk by
chunk, one chunk every ``pace_s``; the coordinator closes the round and elects each pool's model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from loadgen.chains import contracts
from loadgen.common.errors import ConfigError
from loadgen.engine.plan import PhaseSpec, WorkerSpec, head_then_paced, paced
from loadgen.workloads.base import (
    MAX_WORKERS,
    MIN_INTERVAL_S,
    Call,
    Payload,
    Stage,
    Timed,
    Workload,
    WorkloadConfig,
    within_bounds,
)
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.shape import PoolResult, RoundShape, elect_gas, open_gas
from loadgen.workloads.registry import register

if TYPE_CHECKING:
    from loadgen.workloads.fl_round.protocol import Coordinator

COMMIT_GAS = 120_000
REVEAL_BASE_GAS = 100_000
REVEAL_GAS_PER_VALUE = 700  # measured ~565 per value for 1,000-value chunks (BENCHMARKS.md), with headroom

# The study's minimum paces at ≥ 85% committed (its Fig. 2 and Fig. 3), for the sweep figures.
STUDY: dict[str, dict[float, float]] = {
    "workload.redundancy": {1: 0.05, 2: 0.1, 4: 0.1, 8: 0.25, 16: 1.0},
    "workload.model_length": {50_000: 1.0, 100_000: 0.5, 250_000: 0.25, 500_000: 0.25, 1_000_000: 0.25, 2_500_000: 0.25, 5_000_000: 0.5},
}


class FlRoundConfig(WorkloadConfig):
    """The study's protocol: commit, then reveal the model chunk by chunk, every pace_s."""

    kind: Literal["fl-round"]
    model_length: int = Field(gt=0, description="parameters (uint256 values) per model")
    chunk_size: int = Field(1_000, gt=0)
    redundancy: int = Field(1, gt=0, le=MAX_WORKERS, description="workers per pool")
    pools: int = Field(1, gt=0, le=MAX_WORKERS)
    pace_s: float = Field(ge=MIN_INTERVAL_S, description="seconds a worker waits between two chunks")
    epochs: int = Field(1, gt=0, description="rounds played one after the other")
    max_retries: int = Field(3, ge=0, description="re-sends of a rejected chunk before the worker gives up")
    spread: bool = Field(True, description="stagger workers' first chunk over one pace, so the offered rate is smooth")
    schedule: Literal["phased", "study"] = Field(
        "phased",
        description="phased: every commitment at once, the commit phase closed, then the reveals; study: as the study's "
        "Diablo workloads, commitments spread over commit_window_s and reveals from reveal_at_s, whether or not the "
        "commitments are in (the commit phase is closed at the window's end; what the contract refuses reverts)",
    )
    commit_window_s: float = Field(5.0, gt=0, description="schedule study: the commitments are spread over this window")
    reveal_at_s: float = Field(6.0, gt=0, description="schedule study: the first reveal is due this long after the start")
    contract: str | None = Field(
        None, description="a FederatedLearning already on the chain (an earlier run's) to play the rounds on, instead of deploying one"
    )

    @field_validator("contract", mode="before")
    @classmethod
    def _address(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            # YAML reads an unquoted 0x… as a number: a whole address is taken, but one shorter
            # may be a typo as well as an address whose leading zeros the number lost
            if not 2**156 <= v < 2**160:
                raise ValueError(f'is read as the number {v:#x}: quote the address ("0x" and 40 hex digits)')
            v = f"0x{v:040x}"
        if v is not None and not (isinstance(v, str) and re.fullmatch(r"0x[0-9a-fA-F]{40}", v)):
            raise ValueError("is not an address: 0x and 40 hex digits")
        return v

    @property
    def workers(self) -> int:
        return self.redundancy * self.pools

    @model_validator(mode="after")
    def _study_windows(self) -> FlRoundConfig:
        if self.schedule == "study" and self.reveal_at_s <= self.commit_window_s:
            raise ConfigError(
                "workload.reveal_at_s",
                f"{self.reveal_at_s:g} s is not after the commit window ({self.commit_window_s:g} s), whose end closes the commit phase",
                f"set it above {self.commit_window_s:g} (the study: window 5, reveals from 6)",
            )
        return self

    @model_validator(mode="after")
    def _bounded(self) -> FlRoundConfig:
        if self.workers > MAX_WORKERS:
            raise ValueError(f"redundancy × pools is {self.workers:,} workers; at most {MAX_WORKERS:,}")
        within_bounds(self.workers * (model.chunk_count(self.model_length, self.chunk_size) + 1) * self.epochs)
        return self


def reveal_gas(chunk_size: int) -> int:
    return REVEAL_BASE_GAS + REVEAL_GAS_PER_VALUE * chunk_size


@dataclass(frozen=True, kw_only=True)
class FlPayload(Payload):
    contract: str
    seed: int
    model_length: int
    chunk_size: int


class _FlBuilder:
    def __init__(self, p: FlPayload) -> None:
        self.p = p
        self.to = bytes.fromhex(p.contract.removeprefix("0x"))
        self._digests: dict[int, bytes] = {}

    def digest(self, pool: int) -> bytes:
        if pool not in self._digests:
            p = self.p
            self._digests[pool] = model.pool_digest(p.seed, p.epoch, pool, p.model_length, p.chunk_size)
        return self._digests[pool]


@dataclass(frozen=True, kw_only=True)
class Commit(FlPayload):
    def builder(self) -> _CommitBuilder:
        return _CommitBuilder(self)


class _CommitBuilder(_FlBuilder):
    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        return Call(self.to, contracts.commit_calldata(self.p.round_id, model.commitment(self.digest(worker.pool), address)))


@dataclass(frozen=True, kw_only=True)
class Reveal(FlPayload):
    def builder(self) -> _RevealBuilder:
        return _RevealBuilder(self)


class _RevealBuilder(_FlBuilder):
    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        p = self.p
        chunk = model.pool_chunk(p.seed, p.epoch, worker.pool, item, p.model_length, p.chunk_size)
        return Call(self.to, contracts.reveal_chunk_calldata(p.round_id, item, chunk))


@dataclass(frozen=True, kw_only=True)
class Round(FlPayload):
    """The study's schedule: a worker's item 0 is its commitment, item i ≥ 1 its chunk i − 1."""

    def builder(self) -> _RoundBuilder:
        return _RoundBuilder(self)


class _RoundBuilder:
    def __init__(self, p: Round) -> None:
        self.commit = _CommitBuilder(p)
        self.reveal = _RevealBuilder(p)

    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        return self.commit.call(worker, address, 0) if item == 0 else self.reveal.call(worker, address, item - 1)


@register
class FlRound(Workload[FlRoundConfig]):
    kind = "fl-round"
    config_model = FlRoundConfig
    search_param = "workload.pace_s"
    sweep = "search"
    shares_contracts = True  # every epoch of every run opens a round of its own
    references: ClassVar[dict[str, dict[float, float]]] = STUDY
    figure_names: ClassVar[dict[str, str]] = {"workload.redundancy": "fig2-redundancy", "workload.model_length": "fig3-model-length"}

    @property
    def workers(self) -> int:
        return self.config.workers

    @property
    def pool_size(self) -> int:
        return self.config.redundancy

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def interval_s(self) -> float:
        return self.config.pace_s

    def check_chain(self, block_gas_limit: int) -> None:
        """The round's two largest coordinator transactions, sized from their measured gas: its
        opening stores every member, and each pool's election counts its members' votes."""
        c, limit = self.config, block_gas_limit
        holds = f"this chain's blocks hold {limit:,}"
        if (gas := elect_gas(c.redundancy)) > limit:
            most = _largest(elect_gas, limit)
            what = f"electing a pool of {c.redundancy:,} members needs ~{gas:,} gas; {holds}"
            raise ConfigError("workload.redundancy", what, f"keep it ≤ {most:,} (more pools of fewer members)")
        if (gas := open_gas(c.workers)) > limit:
            most = _largest(open_gas, limit)
            what = f"opening a round of {c.workers:,} members (redundancy × pools) needs ~{gas:,} gas; {holds}"
            raise ConfigError("workload.pools", what, f"keep redundancy × pools ≤ {most:,}")

    def phases(self, gas_limit: int | None, seed: int) -> tuple[PhaseSpec, ...]:
        c = self.config
        chunks = model.chunk_count(c.model_length, c.chunk_size)
        fixed = gas_limit is not None
        if c.schedule == "study":
            # one phase, item 0 the commitment and items 1… the chunks; one gas limit for both,
            # the reveal's (the node's estimate of the phase's first transaction, a commitment,
            # would starve the chunks)
            study = head_then_paced(
                "round", c.workers, c.commit_window_s, c.reveal_at_s, c.pace_s, 1 + chunks, spread=c.spread,
                max_retries=c.max_retries, gas_limit=gas_limit or reveal_gas(c.chunk_size), gas_fixed=True,
            )  # fmt: skip
            return (study,)
        # The study's workers all send their commitment at once when the round opens.
        commit = paced(
            "commit", c.workers, c.pace_s, 1, spread=False, max_retries=c.max_retries, gas_limit=gas_limit or COMMIT_GAS, gas_fixed=fixed
        )
        reveal = paced(
            "reveal",
            c.workers,
            c.pace_s,
            chunks,
            spread=c.spread,
            max_retries=c.max_retries,
            gas_limit=gas_limit or reveal_gas(c.chunk_size),
            gas_fixed=fixed,
        )
        return commit, reveal

    def play(self, stage: Stage) -> None:
        c = self.config
        artifact = contracts.load("FederatedLearning")
        fl = stage.deploy(artifact) if c.contract is None else stage.deployed_at(artifact, c.contract, "workload.contract")
        from loadgen.workloads.fl_round.protocol import Coordinator  # web3: imported by the runs that play a round

        coordinator = Coordinator(stage.w3, stage.coordinator, fl, stage.fees)
        shape = RoundShape(model.chunk_count(c.model_length, c.chunk_size), c.redundancy, tuple(stage.addresses))
        round_id = stage.handover.pop((fl.address, shape), None)
        ahead = round_id is not None and coordinator.still_open(round_id)
        if not ahead:
            round_id = coordinator.open_round(shape)
        rounds = []
        opened_ahead = 0
        for epoch in range(c.epochs):
            opened_ahead += ahead
            stage.record("rounds_opened_ahead", opened_ahead)
            # epochs from 0, as in the rows, summary.json's rounds and the live display
            how = "opened ahead" if ahead else "opened"
            stage.event(f"epoch {epoch}: round {round_id} {how} for {c.workers} workers in {c.pools} pool(s)")
            common: dict[str, Any] = {"contract": fl.address, "epoch": epoch, "round_id": round_id, "seed": stage.seed}
            common |= {"model_length": c.model_length, "chunk_size": c.chunk_size}
            self._play_round(stage, coordinator, round_id, common)
            stage.event(f"round {round_id}: closing the reveal phase, electing {c.pools} pool(s)…")
            # the next epoch's round, or the series' next run's, opens in the same block
            following = shape if epoch + 1 < c.epochs else self._next_run(stage, shape)
            results, opened = coordinator.finish_round(round_id, c.pools, c.redundancy, following)
            rounds.append(self._elected(stage, results, round_id, epoch, fl.address))
            stage.record("rounds", rounds)
            if epoch + 1 < c.epochs:
                round_id, ahead = opened, True
            elif opened is not None:
                stage.handover[(fl.address, following)] = opened

    def _play_round(self, stage: Stage, coordinator: Coordinator, round_id: int, common: dict[str, Any]) -> None:
        if self.config.schedule == "study":
            (study,) = stage.phases
            close = Timed(self.config.commit_window_s, lambda: coordinator.close_commit_phase(round_id), "closeCommitPhase")
            stage.phase(study, Round(**common), during=(close,))
            return
        commit, reveal = stage.phases
        stage.phase(commit, Commit(**common))
        coordinator.close_commit_phase(round_id)
        stage.phase(reveal, Reveal(**common))

    @staticmethod
    def _next_run(stage: Stage, shape: RoundShape) -> RoundShape | None:
        addresses = stage.next_addresses()
        return None if addresses is None else RoundShape(shape.num_chunks, shape.pool_size, tuple(addresses))

    def _elected(self, stage: Stage, pools: list[PoolResult], round_id: int, epoch: int, contract: str) -> dict:
        c = self.config
        results: list[dict[str, Any]] = []
        for result in pools:
            expected = model.pool_digest(stage.seed, epoch, result.pool, c.model_length, c.chunk_size)
            results.append(
                {"pool": result.pool, "elected": "0x" + result.digest.hex(), "votes": result.votes, "expected": result.digest == expected}
            )
        elected = sum(r["expected"] for r in results)
        stage.event(f"round {round_id}: {elected}/{c.pools} pool(s) elected their model")
        return {"epoch": epoch, "round_id": round_id, "contract": contract, "pools": results}


def _largest(gas: Callable[[int], int], limit: int) -> int:
    """The largest n with gas(n) ≤ limit (gas grows with n; 0 when not even one fits)."""
    lo, hi = 0, MAX_WORKERS
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if gas(mid) <= limit else (lo, mid - 1)
    return lo

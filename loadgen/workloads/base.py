"""The workload interface: what the engine asks of a workload, and what it offers one.

A workload is one module: a config model (its ``kind`` is the experiment file's
``workload.kind``), a ``Workload`` subclass registered under that kind, and the picklable
``Payload`` descriptions its phases carry. The engine never names a workload; it

1. validates ``workload:`` against the union of the registered config models;
2. asks the workload for its phases (``phases``, pure: built from the timing helpers of
   ``loadgen.engine.plan``), so a plan is known before anything runs;
3. calls ``play`` with a ``Stage``: the workload deploys what it needs, runs coordinator steps,
   and hands each phase to ``stage.phase`` with a payload;
4. inside the sender actors, turns a payload into a ``CallBuilder`` that makes each worker's
   transaction for item i where it is sent (so no model or calldata crosses Ray).

Searches and sweeps ask ``search_param`` and ``sweep`` what their axis means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from loadgen.config.strict import Strict
from loadgen.engine.plan import PhaseSpec, WorkerSpec

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import TxReceipt

    from loadgen.chains.contracts import Artifact
    from loadgen.chains.fees import Fees
    from loadgen.engine.profile import RateProfile


# Bounds that keep a plan computable on one machine (arrival times and per-worker queues are
# held in memory): far above any run of the study or the benchmarks (a million transactions).
MAX_WORKERS = 100_000
MAX_TRANSACTIONS = 20_000_000
MIN_INTERVAL_S = 0.001  # a worker's shortest pace: a thousand transactions a second from one account


def within_bounds(transactions: float) -> None:
    """Refuses a plan too large to hold (see MAX_TRANSACTIONS), naming the count."""
    if transactions > MAX_TRANSACTIONS:
        raise ValueError(f"plans {transactions:,.0f} transactions; one run holds at most {MAX_TRANSACTIONS:,}: lower the rate or length")


class WorkloadConfig(Strict):
    kind: str


@dataclass(frozen=True)
class Call:
    """One worker transaction's content (nonce, gas and fees are the sender's business)."""

    to: bytes
    data: bytes
    value: int = 0


class CallBuilder(Protocol):
    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        """The transaction of ``worker`` (whose account is ``address``) for item ``item`` of the phase."""
        ...


@dataclass(frozen=True)
class Timed:
    """An action a phase runs ``at_s`` after its start, whatever the workers have done by then
    (engine/timed.py): the study's schedule closes the commit phase while reveals are due."""

    at_s: float
    action: Callable[[], None]
    name: str


@dataclass(frozen=True, kw_only=True)
class Payload(ABC):
    """What a phase's transactions carry, small and picklable: it crosses Ray to every actor."""

    # recorded in every row of the phase
    epoch: int = 0
    round_id: int = 0

    @abstractmethod
    def builder(self) -> CallBuilder: ...


class Stage(Protocol):
    """What the engine offers a workload while it plays."""

    @property
    def addresses(self) -> list[str]:
        """The workers' accounts, by worker index."""
        ...

    @property
    def seed(self) -> int: ...

    @property
    def handover(self) -> dict[Hashable, Any]:
        """What a run leaves ready on the chain for the next run of its series (fl-round: the
        next round, opened in the block that ends this one's), kept between the runs."""
        ...

    def next_addresses(self) -> list[str] | None:
        """The workers' accounts of the series' next run, for as many workers as this one, when
        the series foresees that run (a search's next trial); None otherwise."""
        ...

    @property
    def w3(self) -> Web3: ...

    @property
    def coordinator(self) -> LocalAccount:
        """Key index 0: deploys, coordinates, funds."""
        ...

    @property
    def fees(self) -> Fees: ...

    @property
    def phases(self) -> tuple[PhaseSpec, ...]:
        """The planned phases of one epoch (``Workload.phases``)."""
        ...

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        """Deployed by the coordinator; its address is recorded in the manifest."""
        ...

    def deployed_at(self, artifact: Artifact, address: str, field: str) -> Contract:
        """One already on the chain, recorded as a deployed one; ``field`` (the experiment's, that
        gave the address) is named when the code there is not the artifact's."""
        ...

    def transact(self, contract: Contract, function: str, *args: Any) -> TxReceipt:
        """A coordinator call, waited for; a revert raises."""
        ...

    def phase(self, phase: PhaseSpec, payload: Payload, during: tuple[Timed, ...] = ()) -> None:
        """Runs one phase on every worker until each transaction is final and the pools are
        empty; ``during``: actions at fixed times from the phase's start."""
        ...

    def event(self, message: str) -> None: ...

    def record(self, key: str, value: Any) -> None:
        """Adds ``value`` under ``key`` to the run's summary (e.g. the rounds and their election)."""
        ...


C = TypeVar("C", bound=WorkloadConfig)


class Workload(ABC, Generic[C]):
    kind: ClassVar[str]
    config_model: ClassVar[type[WorkloadConfig]]
    # the parameter a search minimises by default; None: the workload has none (pass --param)
    search_param: ClassVar[str | None] = None
    # a sweep runs a search per value ("search") or `repeats` runs per value ("repeats")
    sweep: ClassVar[Literal["search", "repeats"]] = "repeats"
    # sweep figures: published reference points per varied parameter, and file names
    references: ClassVar[dict[str, dict[float, float]]] = {}
    figure_names: ClassVar[dict[str, str]] = {}
    # the runs of a search or sweep may share its contracts: each starts afresh on them (a new
    # round, say) rather than on storage an earlier run filled
    shares_contracts: ClassVar[bool] = False

    def __init__(self, config: C) -> None:
        self.config = config

    @property
    @abstractmethod
    def workers(self) -> int: ...

    @property
    def pool_size(self) -> int | None:
        """Workers per pool when the workload groups them (recorded in each row)."""
        return None

    @property
    def epochs(self) -> int:
        """Times ``phases`` are played, one after the other."""
        return 1

    @property
    def interval_s(self) -> float | None:
        """A worker's time between two transactions, when it is one number (the live pace gauge)."""
        return None

    def planned_rate(self) -> RateProfile | None:
        """The offered rate over time, when the workload is defined by one (drawn in reports)."""
        return None

    def check(self) -> None:
        """Whatever can be checked before any chain starts (files, names): a mistake costs a second."""

    def check_chain(self, block_gas_limit: int) -> None:
        """What the chain's blocks cannot hold, refused (ConfigError) before any worker sends:
        a transaction the workload's coordination needs that no block could include."""

    @abstractmethod
    def phases(self, gas_limit: int | None, seed: int) -> tuple[PhaseSpec, ...]:
        """One epoch's phases, in order. ``gas_limit``: the experiment's override, if any."""

    @abstractmethod
    def play(self, stage: Stage) -> None:
        """Deploys, coordinates and runs the phases (see ``Stage``)."""

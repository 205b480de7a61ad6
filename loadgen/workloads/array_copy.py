"""``array-copy``: the study's 4.1. A fixed total rate of ``ArrayCopy.copy`` calls, each copying
``array_size`` fresh values into storage, to find the largest transaction that still commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from loadgen.chains import contracts
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.workloads.base import Call, Payload, Stage
from loadgen.workloads.fl_round import model
from loadgen.workloads.rate import RateDriven, RateDrivenConfig, rate_phase
from loadgen.workloads.registry import register

DEFAULT_COPY_GAS = 30_000_000


class ArrayCopyConfig(RateDrivenConfig):
    """The study's 4.1: a fixed total rate of ArrayCopy calls for a duration."""

    kind: Literal["array-copy"]
    array_size: int = Field(gt=0, description="uint256 values each copy(uint256[]) call stores")


@dataclass(frozen=True, kw_only=True)
class Copy(Payload):
    contract: str
    seed: int
    array_size: int

    def builder(self) -> _CopyBuilder:
        return _CopyBuilder(self)


class _CopyBuilder:
    def __init__(self, p: Copy) -> None:
        # every call copies the same array: built once per actor
        self._call = Call(
            bytes.fromhex(p.contract.removeprefix("0x")), contracts.array_copy_calldata(model.random_model(p.array_size, p.seed))
        )

    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        return self._call


@register
class ArrayCopy(RateDriven[ArrayCopyConfig]):
    kind = "array-copy"
    config_model = ArrayCopyConfig
    figure_names: ClassVar[dict[str, str]] = {"workload.array_size": "fig1-transaction-size"}

    def phases(self, gas_limit: int | None, seed: int) -> tuple[PhaseSpec, ...]:
        return (rate_phase("array-copy", self.config, seed, gas=DEFAULT_COPY_GAS, fixed_gas=gas_limit),)

    def play(self, stage: Stage) -> None:
        target = stage.deploy(contracts.load("ArrayCopy"))
        (phase,) = stage.phases
        stage.phase(phase, Copy(contract=target.address, seed=stage.seed, array_size=self.config.array_size))

"""``transfer``: plain value transfers, worker i paying worker i+1 (the last pays the first), at
a total rate. The simplest transaction a chain carries: its ceiling is the chain's, not a
contract's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.workloads.base import Call, Payload, Stage
from loadgen.workloads.rate import RateDriven, RateDrivenConfig, rate_phase
from loadgen.workloads.registry import register

TRANSFER_GAS = 21_000


class TransferConfig(RateDrivenConfig):
    kind: Literal["transfer"]
    value_wei: int = Field(1, ge=0, description="paid by each transfer")


@dataclass(frozen=True, kw_only=True)
class Pay(Payload):
    addresses: tuple[str, ...]  # every worker's, by index
    value_wei: int

    def builder(self) -> _PayBuilder:
        return _PayBuilder(self)


class _PayBuilder:
    def __init__(self, p: Pay) -> None:
        self.calls = [Call(bytes.fromhex(a.removeprefix("0x")), b"", p.value_wei) for a in p.addresses]

    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        return self.calls[(worker.worker + 1) % len(self.calls)]


@register
class Transfer(RateDriven[TransferConfig]):
    kind = "transfer"
    config_model = TransferConfig

    def phases(self, gas_limit: int | None, seed: int) -> tuple[PhaseSpec, ...]:
        return (rate_phase("transfer", self.config, seed, gas=TRANSFER_GAS, fixed_gas=gas_limit, value_wei=self.config.value_wei),)

    def play(self, stage: Stage) -> None:
        (phase,) = stage.phases
        stage.phase(phase, Pay(addresses=tuple(stage.addresses), value_wei=self.config.value_wei))

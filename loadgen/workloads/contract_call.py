"""``contract-call``: any contract, any function, at a rate. The experiment names a Solidity
source (compiled with the project's solc) or an ABI + bytecode artifact, its constructor
arguments, optional set-up calls by the coordinator, and the function every worker calls with
one generator per argument.

Generators (``{gen: …}``; a bare value is a constant):
``constant`` (value), ``sequence`` (start, step: the arrival's index across all workers),
``random_uint`` (bits), ``random_bytes`` (size), ``random_array`` (length, bits),
``own_address``, ``other_worker`` (offset: the address of worker i+offset), ``all_workers``
(every worker's address, as an address[]), ``choice`` (values). Random values are drawn from the run's
seed, the worker and the item, so a run is reproducible and two workers never collide by accident.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from loadgen.chains import contracts
from loadgen.chains.contracts import Artifact
from loadgen.common.errors import ConfigError
from loadgen.common.paths import REPO_ROOT
from loadgen.config.strict import Strict
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.workloads.base import Call, Payload, Stage
from loadgen.workloads.rate import RateDriven, RateDrivenConfig, rate_phase
from loadgen.workloads.registry import register

DEFAULT_CALL_GAS = 1_000_000


class Constant(Strict):
    gen: Literal["constant"]
    value: Any


class Sequence(Strict):
    gen: Literal["sequence"]
    start: int = 0
    step: int = 1


class RandomUint(Strict):
    gen: Literal["random_uint"]
    bits: int = Field(256, gt=0, le=256)


class RandomBytes(Strict):
    gen: Literal["random_bytes"]
    size: int = Field(ge=0, le=4_000_000)


class RandomArray(Strict):
    gen: Literal["random_array"]
    length: int = Field(ge=0, le=125_000)
    bits: int = Field(256, gt=0, le=256)


class OwnAddress(Strict):
    gen: Literal["own_address"]


class OtherWorker(Strict):
    gen: Literal["other_worker"]
    offset: int = 1


class AllWorkers(Strict):
    gen: Literal["all_workers"]


class Choice(Strict):
    gen: Literal["choice"]
    values: list[Any] = Field(min_length=1)


Generator = Annotated[
    Constant | Sequence | RandomUint | RandomBytes | RandomArray | OwnAddress | OtherWorker | AllWorkers | Choice,
    Field(discriminator="gen"),
]


def _bare_is_constant(values: list[Any]) -> list[Any]:
    return [v if isinstance(v, dict) and "gen" in v else {"gen": "constant", "value": v} for v in values]


class CallSpec(Strict):
    function: str = Field(description="a function name, or its signature when it is overloaded, e.g. add(uint256)")
    args: list[Generator] = Field(default_factory=list, description="each a bare value (a constant) or a generator {gen: …} (below)")

    _bare = field_validator("args", mode="before")(classmethod(lambda cls, v: _bare_is_constant(v) if isinstance(v, list) else v))


class ContractSpec(Strict):
    source: str | None = Field(None, description="a Solidity file, compiled with the project's solc")
    artifact: str | None = Field(None, description="or a JSON artifact with abi and bytecode (Hardhat, Foundry, solc)")
    name: str | None = Field(None, description="the contract, when the source holds several")
    constructor: list[Any] = Field(default_factory=list, description="the constructor's arguments")

    @model_validator(mode="after")
    def _one_origin(self) -> ContractSpec:
        if (self.source is None) == (self.artifact is None):
            raise ValueError("give the contract's source or its artifact (one of them)")
        return self

    def load(self) -> Artifact:
        from loadgen.chains import solc  # node and solc only when a source is compiled

        if self.source is not None:
            return solc.compile_source(_find(self.source), self.name, field="workload.contract.source")
        assert self.artifact is not None
        return solc.load_artifact_file(_find(self.artifact), field="workload.contract.artifact")


def _find(path: str) -> Path:
    """Relative to the working directory, else to loadgen's own folder (its bundled contracts)."""
    here = Path(path)
    if here.is_absolute() or here.exists():
        return here
    bundled = REPO_ROOT / path
    return bundled if bundled.exists() else here


class ContractCallConfig(RateDrivenConfig):
    kind: Literal["contract-call"]
    contract: ContractSpec
    setup: list[CallSpec] = Field(default_factory=list, description="coordinator calls after the deployment, in order")
    call: CallSpec
    gas_limit: int | None = Field(None, gt=21_000, description="per call; the node's estimate of the first call × 1.3 when absent")


# generators, evaluated ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ArgContext:
    seed: int
    worker: int  # -1: a set-up call by the coordinator
    item: int
    workers: int
    address: str
    addresses: tuple[str, ...]


def generate(gen: Any, i: int, ctx: ArgContext) -> Any:
    """The value of argument ``i`` for the given worker and item."""
    rng = random.Random(f"{ctx.seed}/{ctx.worker}/{ctx.item}/{i}")
    match gen:
        case Constant(value=value):
            return value
        case Sequence(start=start, step=step):
            return start + step * (ctx.item * ctx.workers + max(ctx.worker, 0))
        case RandomUint(bits=bits):
            return rng.getrandbits(bits)
        case RandomBytes(size=size):
            return rng.randbytes(size)
        case RandomArray(length=length, bits=bits):
            return [rng.getrandbits(bits) for _ in range(length)]
        case OwnAddress():
            return ctx.address
        case OtherWorker(offset=offset):
            return ctx.addresses[(max(ctx.worker, 0) + offset) % len(ctx.addresses)]
        case AllWorkers():
            return list(ctx.addresses)
        case Choice(values=values):
            return rng.choice(values)
    raise TypeError(f"unknown generator {gen!r}")


def _coerce(abi_type: str, value: Any) -> Any:
    """YAML gives strings for addresses and hex; eth_abi wants bytes for bytesN and bytes."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_coerce(inner, v) for v in value]
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    if abi_type.startswith("bytes") and abi_type != "bytes" and isinstance(value, bytes | bytearray):
        return bytes(value).ljust(int(abi_type[5:]), b"\0")[: int(abi_type[5:])]
    return value


@dataclass(frozen=True)
class Function:
    name: str
    types: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    def calldata(self, args: list[Any]) -> bytes:
        from eth_abi import encode as abi_encode  # imported by the runs of this workload, not by every run

        return contracts.selector(self.signature) + abi_encode(
            list(self.types), [_coerce(t, a) for t, a in zip(self.types, args, strict=True)]
        )


def resolve_function(artifact: Artifact, spec: CallSpec, field: str) -> Function:
    wanted = spec.function.replace(" ", "")
    candidates = [
        Function(item["name"], tuple(contracts.abi_type(i) for i in item["inputs"]))
        for item in artifact.abi
        if item.get("type") == "function" and (item["name"] == wanted or contracts.signature(item) == wanted)
    ]
    if not candidates:
        names = sorted({i["name"] for i in artifact.abi if i.get("type") == "function"})
        raise ConfigError(f"{field}.function", f"{artifact.name} has no function {spec.function!r}", f"use one of: {', '.join(names)}")
    if len(candidates) > 1:
        raise ConfigError(f"{field}.function", f"{spec.function!r} is overloaded", f"write its signature: {candidates[0].signature}")
    (function,) = candidates
    if len(spec.args) != len(function.types):
        raise ConfigError(
            f"{field}.args",
            f"{function.signature} takes {len(function.types)} argument(s), {len(spec.args)} given",
            "give one generator per argument",
        )
    return function


# the workload ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Calls(Payload):
    contract: str
    function: Function
    args: tuple[Any, ...]  # generator models: small and picklable
    seed: int
    addresses: tuple[str, ...]

    def builder(self) -> _CallsBuilder:
        return _CallsBuilder(self)


class _CallsBuilder:
    def __init__(self, p: Calls) -> None:
        self.p = p
        self.to = bytes.fromhex(p.contract.removeprefix("0x"))

    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        p = self.p
        ctx = ArgContext(p.seed, worker.worker, item, len(p.addresses), address, p.addresses)
        return Call(self.to, p.function.calldata([generate(g, i, ctx) for i, g in enumerate(p.args)]))


@register
class ContractCall(RateDriven[ContractCallConfig]):
    kind = "contract-call"
    config_model = ContractCallConfig

    @cached_property
    def artifact(self) -> Artifact:
        return self.config.contract.load()

    @cached_property
    def function(self) -> Function:
        return resolve_function(self.artifact, self.config.call, "workload.call")

    def check(self) -> None:
        """Compiles and resolves everything before any chain starts, so a typo costs a second."""
        for n, step in enumerate(self.config.setup):
            resolve_function(self.artifact, step, f"workload.setup.{n}")
        self.function  # noqa: B018  (resolving it is the check)

    def phases(self, gas_limit: int | None, seed: int) -> tuple[PhaseSpec, ...]:
        return (rate_phase(self.function.name, self.config, seed, gas=DEFAULT_CALL_GAS, fixed_gas=self.config.gas_limit or gas_limit),)

    def play(self, stage: Stage) -> None:
        c = self.config
        target = stage.deploy(self.artifact, *c.contract.constructor)
        addresses = tuple(stage.addresses)
        for n, step in enumerate(c.setup):
            function = resolve_function(self.artifact, step, f"workload.setup.{n}")
            ctx = ArgContext(stage.seed, -1, n, len(addresses), stage.coordinator.address, addresses)
            stage.transact(
                target,
                function.name,
                *[_coerce(t, generate(g, i, ctx)) for i, (t, g) in enumerate(zip(function.types, step.args, strict=True))],
            )
        payload = Calls(contract=target.address, function=self.function, args=tuple(c.call.args), seed=stage.seed, addresses=addresses)
        (phase,) = stage.phases
        stage.phase(phase, payload)

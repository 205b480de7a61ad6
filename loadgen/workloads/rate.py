"""What rate-driven workloads share: a total arrival rate (constant, or a profile) spread over
``workers`` accounts, each keeping its own nonce order."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import Field, model_validator

from loadgen.config.strict import Strict
from loadgen.engine import profile as profiles
from loadgen.engine.plan import PhaseSpec, constant_rate, profiled
from loadgen.workloads.base import MAX_WORKERS, MIN_INTERVAL_S, Workload, WorkloadConfig, within_bounds


class _Shape(Strict):
    arrivals: Literal["even", "poisson"] = Field("even", description="even: exactly the rate; poisson: random arrivals at that mean")


class ConstantProfile(_Shape):
    shape: Literal["constant"]
    rate_tps: float = Field(gt=0)
    duration_s: float = Field(gt=0)

    def profile(self) -> profiles.RateProfile:
        return profiles.constant(self.rate_tps, self.duration_s, self.arrivals == "poisson")


class RampProfile(_Shape):
    shape: Literal["ramp"]
    from_tps: float = Field(ge=0)
    to_tps: float = Field(ge=0)
    duration_s: float = Field(gt=0)

    def profile(self) -> profiles.RateProfile:
        return profiles.ramp(self.from_tps, self.to_tps, self.duration_s, self.arrivals == "poisson")


class Step(Strict):
    rate_tps: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class StepsProfile(_Shape):
    shape: Literal["steps"]
    steps: list[Step] = Field(min_length=1)

    def profile(self) -> profiles.RateProfile:
        return profiles.steps([(s.rate_tps, s.duration_s) for s in self.steps], self.arrivals == "poisson")


class Point(Strict):
    t: float = Field(ge=0, description="seconds from the start")
    rate_tps: float = Field(ge=0)


class PointsProfile(_Shape):
    """Diablo's ``{t: rate}`` form: each point's rate holds until the next point (``step``) or
    goes linearly to it (``linear``); the last holds until ``end_s``."""

    shape: Literal["points"]
    points: list[Point] = Field(min_length=1)
    end_s: float = Field(gt=0)
    interpolate: Literal["step", "linear"] = "step"

    @model_validator(mode="after")
    def _ordered(self) -> PointsProfile:
        times = [p.t for p in self.points]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("the points' times must increase")
        if self.end_s <= times[-1]:
            raise ValueError(f"end_s must come after the last point ({times[-1]:g})")
        return self

    def profile(self) -> profiles.RateProfile:
        linear = self.interpolate == "linear"
        return profiles.points([(p.t, p.rate_tps) for p in self.points], self.end_s, linear, self.arrivals == "poisson")


Profile = Annotated[ConstantProfile | RampProfile | StepsProfile | PointsProfile, Field(discriminator="shape")]


class RateDrivenConfig(WorkloadConfig):
    rate_tps: float | None = Field(None, gt=0, description="total transactions per second (with duration_s), or a profile")
    duration_s: float | None = Field(None, gt=0, description="seconds the constant rate_tps lasts")
    profile: Profile | None = Field(None, description="instead of rate_tps and duration_s: a rate that changes (the shapes below)")
    workers: int = Field(10, gt=0, le=MAX_WORKERS, description="accounts the rate is spread over")

    @model_validator(mode="after")
    def _one_rate(self) -> RateDrivenConfig:
        constant = self.rate_tps is not None or self.duration_s is not None
        if constant and self.profile is not None:
            raise ValueError("give either rate_tps and duration_s, or a profile, not both")
        if self.profile is None and (self.rate_tps is None or self.duration_s is None):
            raise ValueError("give rate_tps and duration_s (a constant rate), or a profile")
        within_bounds(self.rate_profile().expected)
        if self.interval_s is not None and self.interval_s < MIN_INTERVAL_S:
            raise ValueError(f"each worker would send every {self.interval_s:.2g} s (under {MIN_INTERVAL_S} s): use more workers")
        return self

    def rate_profile(self) -> profiles.RateProfile:
        if self.profile is not None:
            return self.profile.profile()
        assert self.rate_tps is not None and self.duration_s is not None
        return profiles.constant(self.rate_tps, self.duration_s)

    @property
    def interval_s(self) -> float | None:
        return self.workers / self.rate_tps if self.rate_tps else None


R = TypeVar("R", bound=RateDrivenConfig)


class RateDriven(Workload[R]):
    """A workload whose load is a total rate spread over ``workers`` accounts."""

    @property
    def workers(self) -> int:
        return self.config.workers

    @property
    def interval_s(self) -> float | None:
        return self.config.interval_s

    def planned_rate(self) -> profiles.RateProfile:
        return self.config.rate_profile()


def rate_phase(name: str, config: RateDrivenConfig, seed: int, *, gas: int, fixed_gas: int | None, value_wei: int = 0) -> PhaseSpec:
    """``gas``: the planned limit, until the node's estimate replaces it; ``fixed_gas``: the
    experiment's own, which nothing replaces."""
    limit, fixed = fixed_gas or gas, fixed_gas is not None
    if config.profile is None:
        assert config.rate_tps is not None and config.duration_s is not None
        return constant_rate(
            name, config.workers, config.rate_tps, config.duration_s, gas_limit=limit, value_wei=value_wei, gas_fixed=fixed
        )
    return profiled(name, config.workers, config.rate_profile(), seed, gas_limit=limit, value_wei=value_wei, gas_fixed=fixed)

"""Arrival-rate profiles: a rate (transactions per second) that changes over time, and the
arrival times it gives. Pure.

A profile is a list of segments on which the rate goes linearly from one value to another
(constant, ramp, steps and Diablo's ``{t: rate}`` points are all such lists). Arrivals are the
times at which the expected count Λ(t) = ∫ rate crosses 0, 1, 2, … (``even``), or the times of a
Poisson process of that rate (``poisson``, drawn by time-rescaling: unit-rate exponential gaps
mapped through Λ⁻¹, from a seed, so a run is reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    t0: float
    t1: float
    rate0: float
    rate1: float

    @property
    def count(self) -> float:
        return (self.rate0 + self.rate1) / 2 * (self.t1 - self.t0)


@dataclass(frozen=True)
class RateProfile:
    segments: tuple[Segment, ...]
    poisson: bool = False

    @property
    def duration_s(self) -> float:
        return self.segments[-1].t1 if self.segments else 0.0

    @property
    def expected(self) -> float:
        """Λ(end): the expected number of arrivals."""
        return sum(s.count for s in self.segments)

    def count_between(self, a: float, b: float) -> float:
        """Λ(b) − Λ(a): the arrivals expected in [a, b)."""
        return self._cumulative(b) - self._cumulative(a)

    def _cumulative(self, t: float) -> float:
        total = 0.0
        for s in self.segments:
            if t <= s.t0:
                break
            end = min(t, s.t1)
            rate_at_end = s.rate0 + (s.rate1 - s.rate0) * (end - s.t0) / (s.t1 - s.t0)
            total += (s.rate0 + rate_at_end) / 2 * (end - s.t0)  # the rate is linear on the segment
        return total

    def arrivals(self, seed: int = 0) -> np.ndarray:
        total = self.expected
        if self.poisson:
            rng = np.random.default_rng(seed)
            gaps = rng.exponential(1.0, size=int(total + 10 * np.sqrt(total) + 10))
            targets = np.cumsum(gaps)
        else:
            targets = np.arange(int(np.ceil(total - 1e-9)), dtype=float)
        return self._inverse(targets[targets < total - 1e-9] if self.poisson else targets)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        """Λ⁻¹(y): on a segment, Λ grows as r0·s + a·s²/2 (a the rate's slope), so
        s = 2·dy / (r0 + √(r0² + 2·a·dy)), a form without cancellation that also holds for a = 0."""
        if not self.segments:
            return np.empty(0)
        t0 = np.array([s.t0 for s in self.segments])
        r0 = np.array([s.rate0 for s in self.segments])
        slope = np.array([(s.rate1 - s.rate0) / (s.t1 - s.t0) for s in self.segments])
        starts = np.concatenate(([0.0], np.cumsum([s.count for s in self.segments])[:-1]))
        k = np.clip(np.searchsorted(starts, y, side="right") - 1, 0, len(self.segments) - 1)
        dy = y - starts[k]
        root = np.sqrt(np.maximum(r0[k] ** 2 + 2 * slope[k] * dy, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(dy > 0, 2 * dy / (r0[k] + root), 0.0)
        return t0[k] + s


def constant(rate_tps: float, duration_s: float, poisson: bool = False) -> RateProfile:
    return RateProfile((Segment(0.0, duration_s, rate_tps, rate_tps),), poisson)


def ramp(from_tps: float, to_tps: float, duration_s: float, poisson: bool = False) -> RateProfile:
    return RateProfile((Segment(0.0, duration_s, from_tps, to_tps),), poisson)


def steps(steps: list[tuple[float, float]], poisson: bool = False) -> RateProfile:
    """(rate_tps, duration_s) one after the other."""
    segments, t = [], 0.0
    for rate, duration in steps:
        segments.append(Segment(t, t + duration, rate, rate))
        t += duration
    return RateProfile(tuple(segments), poisson)


def points(points: list[tuple[float, float]], end_s: float, linear: bool = False, poisson: bool = False) -> RateProfile:
    """Diablo's form: (t, rate) points, the rate held from each point to the next (or, with
    ``linear``, going linearly to the next point's rate), the last one held until ``end_s``."""
    bounds = [t for t, _ in points] + [end_s]
    segments = []
    for i, (t, rate) in enumerate(points):
        following = points[i + 1][1] if linear and i + 1 < len(points) else rate
        if bounds[i + 1] > t:
            segments.append(Segment(t, bounds[i + 1], rate, following))
    return RateProfile(tuple(segments), poisson)

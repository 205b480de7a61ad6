"""Where a run's sender actors and block watchers live: Ray actors on the nodes of a cluster
(a private local one unless the run is told to join one), or objects of loadgen's own process,
their workers asyncio tasks of one event loop beside the driver. A load one process carries
needs no Ray: a local Ray costs a run about 8 CPU-s and 5 s to start and stop (its daemons and
a process per actor, each importing Ray; BENCHMARKS.md), more than the sending of a small run.

The fleet reaches either the same way: ``handle.method.remote(…)`` answers a reference the
host waits on (``Host``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from loadgen.common.errors import ConfigError
from loadgen.config.schema import RunConfig
from loadgen.engine.capacity import actors_for
from loadgen.engine.hosting.base import Host
from loadgen.engine.plan import RunPlan

__all__ = ["Host", "choose", "hosted", "kind_for", "ray_running"]


def ray_running() -> bool:
    """Whether this process is already on a Ray cluster (a test's, ``ray job submit``'s): Ray
    is never imported for the question."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def choose(setting: str, *, address: str | None, on_ray: bool, actors: int | None, plan: RunPlan | None) -> str:
    """``ray`` or ``process`` for ``run.hosting``. ``auto`` keeps a run in loadgen's process when
    nothing asks for Ray (no cluster to join or already joined, at most one sender actor) and
    its busiest phase needs one sender actor's CPU (``capacity.actors_for``); a series of runs
    (``plan`` None: a search's trials change the rate) stays on Ray."""
    if setting == "process":
        if address:
            raise ConfigError(
                "run.hosting",
                "'process' runs without Ray, but a Ray cluster was named",
                "drop --ray-address (and $RAY_ADDRESS), or set run.hosting: ray",
            )
        return "process"
    if setting == "ray" or address or on_ray or (actors or 1) > 1 or plan is None:
        return "ray"
    return "process" if actors_for(peak_tps(plan)) == 1 else "ray"


def kind_for(run: RunConfig, address: str | None, plan: RunPlan | None) -> str:
    """``choose`` for an experiment's ``run:`` as this process stands."""
    return choose(run.hosting, address=address, on_ray=ray_running(), actors=run.actors, plan=plan)


def peak_tps(plan: RunPlan) -> float:
    """The offered rate of the plan's busiest phase; a phase shorter than a second (a burst)
    counts as its transactions in one second."""
    return max((p.transactions / max(p.duration_s, 1.0) for p in plan.phases), default=0.0)


@contextlib.contextmanager
def hosted(kind: str, address: str | None) -> Iterator[Host]:
    """The host of ``kind`` for as long as the block runs: Ray joined or started (and left as
    found), or the process's event loop for the actors."""
    if kind == "process":
        from loadgen.engine.hosting.in_process import InProcessHost

        with InProcessHost() as host:
            yield host
        return
    from loadgen.engine.hosting.ray_host import RayHost
    from loadgen.engine.ray_cluster import ray_session

    with ray_session(address):
        yield RayHost()

"""What a run would do, said without starting anything (``loadgen run --dry-run``).

Everything that can be checked before Ray and a chain start is checked here: the experiment
file, the workload's own check (a contract compiles, its function exists), and the plan (workers,
endpoints, actors, phases, transactions, how long). What only the chain can say (gas estimates,
fees, funding) is named as what the run will ask it.
"""

from __future__ import annotations

import os

from loadgen.config.schema import Experiment
from loadgen.engine.capacity import BUSY_TARGET, SENDER_CPU_PER_TX_S, actors_for
from loadgen.engine.hosting import choose
from loadgen.engine.plan import RunPlan


def capacity_lines(plan: RunPlan, actors: int, cores: int | None, cluster: bool) -> list[str]:
    """How many sender actors the plan's busiest phase needs, and a warning where it would not
    get them: a run short of them is INVALID (engine/verdict.py), so it is said before it starts."""
    rates = [p.transactions / p.duration_s for p in plan.phases if p.duration_s > 0]
    if not rates:
        return []
    peak = max(rates)
    needed = actors_for(peak)
    lines = [
        f"its busiest phase offers ~{peak:,.1f} tx/s: about {needed} sender actor(s) at {BUSY_TARGET:.0%} of a core each "
        f"(~{SENDER_CPU_PER_TX_S * 1000:.1f} ms of CPU a transaction, measured); {actors} planned"
    ]
    if needed > actors:
        lines.append(f"warning: {actors} sender actor(s) cannot offer that: set run.actors ≥ {needed}, or lower the rate")
    if not cluster and cores is not None and needed + 1 > cores:  # the driver and the watcher need some too
        lines.append(
            f"warning: this machine has {cores} core(s) and the senders alone need ~{needed}: the run would fall behind its "
            "schedule and be INVALID; lower the rate or run on a Ray cluster (--ray-address)"
        )
    return lines


def preview(experiment: Experiment, actors: int | None = None, cluster: bool = False) -> tuple[RunPlan, list[str]]:
    """The plan and a few lines that describe it; raises ConfigError on what the workload refuses."""
    workload = experiment.plugin
    workload.check()
    chain = experiment.chain
    if not chain.endpoints:  # the embedded network's blocks are known without starting it
        workload.check_chain(chain.devnet.block_gas)  # before the plan: a round no block holds may be huge
    if chain.endpoints:
        endpoints = list(chain.endpoints)
        where = f"{len(endpoints)} endpoint(s): {', '.join(endpoints)}"
    else:
        nodes = 1 if chain.devnet.client == "anvil" else chain.devnet.nodes
        endpoints = [f"<devnet node {i + 1}>" for i in range(nodes)]
        where = f"an embedded {chain.devnet.client} network of {nodes} node(s), started for the run"
    run = experiment.run
    plan = experiment.plan(endpoints, run.actors or 1)  # as the run decides where it runs
    if choose(run.hosting, address="--ray-address" if cluster else None, on_ray=False, actors=run.actors, plan=plan) == "process":
        n_actors, host = 1, "loadgen's own process (no Ray)"
    else:
        n_actors = run.actors or actors or os.cpu_count() or 1
        plan = experiment.plan(endpoints, n_actors)
        host = f"{min(n_actors, len(plan.workers))} sender actor(s)"
    if not chain.endpoints:  # as the run checks it once the plan exists
        plan.check_gas(chain.devnet.block_gas)
    lines = [
        f"experiment {experiment.name}: workload {experiment.workload.kind}, on {where}",
        f"{len(plan.workers)} workers in {host}, {plan.epochs} epoch(s), {plan.transactions:,} transactions when none is refused",
    ]
    for phase in plan.phases:
        gas = f"gas limit {phase.gas_limit:,}" if phase.gas_fixed else f"gas limit from the node's estimate (planned {phase.gas_limit:,})"
        lasts = phase.duration_s
        when = f"over {lasts:,.1f} s (~{phase.transactions / lasts:,.1f} tx/s)" if lasts > 0 else "at once"
        value = f", {phase.value_wei:,} wei each" if phase.value_wei else ""
        lines.append(f"  phase {phase.name}: {phase.transactions:,} transactions {when}, {gas}{value}")
    lines += capacity_lines(plan, min(n_actors, len(plan.workers)), os.cpu_count(), cluster)
    lines.append(
        f"send mode {run.send_mode}, failover {'on' if run.failover else 'off'}, commit timeout {run.commit_timeout_s:g} s, "
        f"threshold {run.threshold:.0%}"
    )
    return plan, lines

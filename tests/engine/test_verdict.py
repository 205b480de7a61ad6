"""A run's verdict alone: figures in, PASS / FAIL / INVALID / INTERRUPTED out; and the offered
rate the rows give it."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loadgen.engine.capacity import GeneratorLoad, judge
from loadgen.engine.verdict import EXIT_CODES, Offered, judge_run
from loadgen.report.summary import summarize, summary_rows, verdict
from tests.support.runs import synthetic_rows

pytestmark = pytest.mark.unit

ON_TIME = judge(GeneratorLoad(0.004, 0.5, (0.3, 0.4), 2, 2.0, 4_000, 10.0, answer_p99_s=0.01))
KEPT = Offered(planned_tps=400.0, offered_tps=398.0)


def test_a_run_that_offered_its_plan_is_judged_on_its_commit_ratio():
    assert judge_run(ratio_passed=True, interrupted=False, stopped_early=False, generator=ON_TIME, offered=KEPT).verdict == "PASS"
    assert judge_run(ratio_passed=False, interrupted=False, stopped_early=False, generator=ON_TIME, offered=KEPT).verdict == "FAIL"
    assert EXIT_CODES["PASS"] == 0 and EXIT_CODES["FAIL"] == 1 and EXIT_CODES["INVALID"] == 4


def test_lag_the_node_caused_no_longer_lets_a_run_pass():
    # the open model waited on a node that answered in 2 s: the lag is the node's, the senders
    # had CPU; the chain still met a lighter load than planned, so no PASS (issue: 5,000 workers)
    slow_node = judge(GeneratorLoad(52.9, 0.5, (0.3, 0.4), 2, 2.0, 4_000, 10.0, answer_p99_s=2.0))
    assert not slow_node.bound and slow_node.lag_from_node
    j = judge_run(ratio_passed=True, interrupted=False, stopped_early=False, generator=slow_node, offered=KEPT)
    assert j.verdict == "INVALID" and j.cause == "node"
    assert "schedule lag p99 52.900 s > 0.125 s" in j.reasons[0]


def test_a_generator_out_of_cpu_is_invalid_and_names_the_generator():
    busy = judge(GeneratorLoad(0.8, 0.5, (0.97, 0.99, 0.98), 2, 12.0, 10_000, 5.0))
    j = judge_run(ratio_passed=True, interrupted=False, stopped_early=False, generator=busy, offered=KEPT)
    assert j.verdict == "INVALID" and j.cause == "generator"
    assert "needs ≥ 5 sender actors" in j.reasons[0]


def test_an_offered_rate_short_of_the_plan_beyond_the_margin_is_invalid():
    short = Offered(planned_tps=10_000.0, offered_tps=4_048.0)
    j = judge_run(ratio_passed=True, interrupted=False, stopped_early=False, generator=ON_TIME, offered=short)
    assert j.verdict == "INVALID"
    assert "offered 4,048.0 tx/s of the 10,000.0 planned (40%; at least 90% needed)" in j.reasons[0]
    at_margin = Offered(planned_tps=100.0, offered_tps=90.5)
    assert judge_run(ratio_passed=True, interrupted=False, stopped_early=False, generator=ON_TIME, offered=at_margin).verdict == "PASS"
    # a run stopped early sent less by design: it fails on what it sent
    j = judge_run(ratio_passed=False, interrupted=False, stopped_early=True, generator=ON_TIME, offered=short)
    assert j.verdict == "FAIL"
    # nothing to compare for a plan that sends all at once
    assert not Offered(None, None).short


def test_an_interrupted_run_has_no_verdict_on_the_chain():
    j = judge_run(ratio_passed=True, interrupted=True, stopped_early=False, generator=ON_TIME, offered=KEPT)
    assert j.verdict == "INTERRUPTED"


def with_sends(table: pa.Table, lag_s: np.ndarray) -> pa.Table:
    """The rows sent ``lag_s`` after their slots (unsent rows stay unsent)."""
    scheduled = table.column("t_scheduled")
    sent = pc.if_else(pc.is_valid(table.column("t_sent")), pc.add(scheduled, pa.array(lag_s)), table.column("t_sent"))
    return table.set_column(table.schema.get_field_index("t_sent"), "t_sent", sent)


def test_the_rows_give_the_planned_and_the_offered_rate():
    table = synthetic_rows("o", seed=5).sort_by("t_scheduled")
    n = table.num_rows
    on_time = summarize(with_sends(table, np.full(n, 0.002)), 0.85)
    times = table.column("t_scheduled").to_numpy()
    span = times.max() - times.min()
    assert on_time["planned_tps"] == pytest.approx(n / span)
    sent = n - on_time["unsent"]
    assert on_time["offered_tps"] == pytest.approx(sent / (span + 0.002), rel=1e-6)
    # a generator falling further behind with every slot: the last leaves a whole span late
    behind = summarize(with_sends(table, np.linspace(0.0, span, n)), 0.85)
    assert behind["offered_tps"] == pytest.approx(sent / (2 * span), rel=0.01)
    assert Offered(behind["planned_tps"], behind["offered_tps"]).short


def test_the_terminal_table_says_invalid_and_why():
    s = summarize(synthetic_rows("t", seed=6), 0.85) | {
        "verdict": "INVALID",
        "passed": False,
        "invalid": {"cause": "generator", "reasons": ["offered 40.0 tx/s of the 100.0 planned (40%; at least 90% needed)"]},
    }
    rows = dict(summary_rows(s))
    assert rows["verdict"].startswith("INVALID")
    assert rows["invalid"].startswith("offered 40.0 tx/s")
    assert "offered rate" in rows and "planned rate" in rows
    # a summary written before the verdict was stored reads as before
    assert verdict({"passed": True, "threshold": 0.85}) == "PASS (threshold 85%)"


def test_a_dry_run_says_how_many_actors_the_rate_needs_and_warns_when_the_machine_has_fewer(monkeypatch):
    from loadgen.config.schema import from_dict
    from loadgen.engine import preview as preview_mod

    def dry_run(rate_tps: float, cores: int, cluster: bool = False) -> list[str]:
        monkeypatch.setattr(preview_mod.os, "cpu_count", lambda: cores)
        experiment = from_dict({"workload": {"kind": "transfer", "rate_tps": rate_tps, "duration_s": 10, "workers": 500}})
        return preview_mod.preview(experiment, cluster=cluster)[1]

    calm = "\n".join(dry_run(100, cores=2))
    assert "tx/s: about 1 sender actor(s)" in calm and "warning" not in calm
    # the 100,000 tx/s on 2 cores: said before anything starts
    flood = dry_run(100_000, cores=2)
    (needed,) = (int(m.group(1)) for line in flood if (m := re.search(r"about (\d+) sender actor", line)))
    assert needed in (160, 161)  # 100,000 tx/s × 0.8 ms at half a core each (the phase's rate rounds up)
    assert f"warning: 2 sender actor(s) cannot offer that: set run.actors ≥ {needed}, or lower the rate" in flood
    assert any("this machine has 2 core(s)" in line and "INVALID" in line for line in flood)
    # on a cluster the machine's own cores do not bound it, the actors still do
    clustered = dry_run(100_000, cores=2, cluster=True)
    assert not any("this machine" in line for line in clustered) and any(f"run.actors ≥ {needed}" in line for line in clustered)

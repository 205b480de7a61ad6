"""The minimum-pace search against a chain of known capacity: a proxy in front of Anvil that
accepts at most R worker transactions a second and refuses the rest."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from loadgen import cli
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.config import schema as config
from loadgen.study.answer import rounded_up
from loadgen.study.bisection import verdict, wilson
from loadgen.study.search import Search
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import local_ray

WORKERS = 8
CAPACITY = 40.0  # tx/s
THRESHOLD = 0.85
# Offered W/pace a second, accepted at most R: the commit ratio (attempts) is R·pace/W past
# capacity, so the smallest pace reaching the threshold is threshold·W/R.
EXPECTED = THRESHOLD * WORKERS / CAPACITY  # 0.17 s


@pytest.fixture(scope="module")
def capped_chain():
    with (
        local_ray(mnemonic=DEV_MNEMONIC),
        Devnet(DevnetSettings(block_time_s=0.25)) as node,
        FaultProxy(node.url, Faults(capacity_tps=CAPACITY)) as proxy,
    ):
        yield proxy


def experiment(url: str) -> config.Experiment:
    return config.from_dict(raw_experiment(url))


def raw_experiment(url: str) -> dict:
    return {
        "name": "capped",
        "chain": {"endpoints": [url]},
        "workload": {
            "kind": "fl-round",
            "model_length": 4_000,
            "chunk_size": 100,
            "redundancy": 4,
            "pools": 2,
            "pace_s": 1.0,
            "max_retries": 20,
        },
        # the search is under test, not the generator's precision: other work on a busy machine
        # must not make a trial INVALID (lag over 0.1 s) and stop it
        "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "threshold": THRESHOLD, "max_lag_s": 1.0},
    }


@pytest.mark.unit
def test_wilson_and_verdicts():
    lower, upper = wilson(85, 100)
    assert lower < 0.85 < upper
    assert verdict(100, 100, 0.85, 2)[0] == "pass"
    assert verdict(50, 100, 0.85, 2)[0] == "fail"
    assert verdict(85, 100, 0.85, 2)[0] == "undecided"
    assert verdict(10, 10, 0.85, 1)[0] == "undecided"  # too few to see a 15% failure rate
    assert verdict(900, 1_000, 0.85, 1)[0] == "pass"


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_search_finds_the_known_minimum_pace_and_resumes(capped_chain, tmp_path, capsys):
    events: list[str] = []
    search = Search(
        experiment(capped_chain.url),
        tmp_path,
        lo=0.05,
        hi=0.8,
        tolerance=0.1,
        on_event=events.append,
        run_options={"metrics_port": 0, "metrics_linger_s": 0},
    )
    state = search.execute()
    assert state.status == "done"
    assert state.min_value == pytest.approx(EXPECTED, rel=0.1)  # the search tolerance
    lo, hi = state.bracket
    assert (hi - lo) / hi <= 0.1 and hi == state.min_value
    saved = json.loads((tmp_path / "search.json").read_text())
    assert saved["min_pace_s"] == state.min_value
    assert len(saved["trials"]) == len(state.trials) >= 4
    assert all(t["run_dir"] and (tmp_path / "trials").exists() for t in saved["trials"])
    assert (tmp_path / "search.png").is_file()
    # the trials shared the sender actors and the contract (each opened its own round), with fresh keys
    manifests = [json.loads((Path(t["run_dir"]) / "manifest.json").read_text()) for t in saved["trials"]]
    assert len({tuple(m["sender_actors"]) for m in manifests}) == 1
    assert len({m["contracts"]["FederatedLearning"] for m in manifests}) == 1
    rounds = [set(pq.read_table(Path(t["run_dir"]) / "transactions.parquet").column("round_id").to_pylist()) for t in saved["trials"]]
    assert all(len(r) == 1 for r in rounds) and len(set.union(*rounds)) == len(rounds)
    # a trial that played to its end opened the next one's round in its own last block
    summaries = [json.loads((Path(t["run_dir"]) / "summary.json").read_text()) for t in saved["trials"]]
    assert summaries[0]["rounds_opened_ahead"] == 0
    followed = [after["rounds_opened_ahead"] for before, after in itertools.pairwise(summaries) if not before["stopped_early"]]
    assert followed and all(followed)
    assert all(t["generator_bound"] is None for t in saved["trials"])
    # the brackets were checked first
    assert [p["value"] for p in saved["probes"]][:2] == [0.8, 0.05]
    # the same search from the command line resumes the finished one: it re-runs nothing, and
    # says each probe with its n and interval, and the answer as the bracket it supports
    config_file = tmp_path / "capped.yaml"
    config_file.write_text(yaml.safe_dump(raw_experiment(capped_chain.url)))
    args = ["search", str(config_file), "--lo", "0.05", "--hi", "0.8", "--tolerance", "0.1", "--out", str(tmp_path), "--metrics-port", "0"]
    capsys.readouterr()
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert len(json.loads((tmp_path / "search.json").read_text())["trials"]) == len(saved["trials"])
    assert f"resuming {tmp_path / 'search.json'}: {len(saved['trials'])} trial(s) already done" in out
    hi_probe = next(p for p in saved["probes"] if p["value"] == hi)
    assert f"probe workload.pace_s={hi:g}: PASS, {hi_probe['committed']:,}/{hi_probe['scheduled']:,} committed (" in out
    assert "95% interval" in out
    assert f"minimum workload.pace_s ≈ {rounded_up(hi, lo):g}  (between {lo:g}, which fails, and {hi:g}, which passes)" in out
    assert "one trial a probe" in out and "--repeats 2" in out


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_a_failing_hi_is_reported(capped_chain, tmp_path):
    state = Search(
        experiment(capped_chain.url), tmp_path, lo=0.01, hi=0.05, tolerance=0.1, run_options={"metrics_port": 0, "metrics_linger_s": 0}
    ).execute()
    assert state.status == "hi-fails"
    assert state.min_value is None
    assert any("raise --hi" in n for n in state.notes)
    assert state.trials[0].stopped_early  # hopeless trials stop early


class ScriptedChain(Search):
    """The search's logic against a scripted response (commit ratio by pace), no chain: the
    capacity-proxy test above covers the trials themselves."""

    def __init__(self, response, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.response = response
        self.calls: list[float] = []
        self.key_offsets: list[int] = []
        self.interrupt_at: int | None = None

    @contextlib.contextmanager
    def environment(self):
        yield self.experiment, None

    def run_trial(self, experiment, run_id, index, on_progress=None):
        pace = experiment.workload.pace_s
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(pace)
        self.key_offsets.append(experiment.run.key_offset)
        ratio = self.response(pace, self.calls.count(pace))
        n = 1_000
        s = {"scheduled": n, "committed": round(ratio * n), "commit_ratio": round(ratio * n) / n}
        return self.dir / run_id, s | {"latency_p50_s": 1.0, "latency_p95_s": 2.0, "latency_p99_s": 3.0}


def scripted(tmp_path, response, **kw) -> ScriptedChain:
    return ScriptedChain(
        response, experiment("http://127.0.0.1:9"), tmp_path, lo=kw.pop("lo", 0.05), hi=kw.pop("hi", 1.6), tolerance=0.05, **kw
    )


@pytest.mark.unit
def test_monotone_response_bisects_to_the_threshold_crossing(tmp_path):
    search = scripted(tmp_path, lambda pace, _: min(1.0, pace / 0.4))  # crosses 0.85 at 0.34
    state = search.execute()
    assert state.status == "done"
    assert state.min_value == pytest.approx(0.34, rel=0.05)
    assert {t.verdict for t in state.trials} == {"pass", "fail"}
    assert search.calls[:2] == [1.6, 0.05]  # the brackets first
    assert not state.notes


@pytest.mark.unit
def test_a_slower_pace_that_keeps_failing_is_reported_and_the_search_widens(tmp_path):
    # passes from 0.2 on, except in a band of slower paces that always fails
    def response(pace, _):
        if 0.5 <= pace <= 0.6:
            return 0.5
        return 1.0 if pace >= 0.2 else 0.3

    search = scripted(tmp_path, response, lo=0.1, hi=1.6)
    state = search.execute()
    assert state.status == "non-monotone"
    assert any("non-monotone" in n and "fails, twice" in n for n in state.notes)
    assert 0.6 < state.min_value <= 0.6 * 1.1  # the smallest pace above the failing band
    assert any(search.calls.count(v) >= 2 for v in search.calls)  # the failure was tried again


@pytest.mark.unit
def test_a_failure_that_does_not_repeat_is_not_believed(tmp_path):
    # passes from 0.2 on; the first trial at any pace between 0.5 and 0.6 fails (noise)
    def response(pace, nth):
        if 0.5 <= pace <= 0.6 and nth == 1:
            return 0.5
        return 1.0 if pace >= 0.2 else 0.3

    state = scripted(tmp_path, response, lo=0.1, hi=1.6).execute()
    assert state.status == "done"
    assert state.min_value == pytest.approx(0.2, rel=0.06)
    assert any("passed when tried again" in n for n in state.notes)


@pytest.mark.unit
def test_no_two_trials_of_a_series_share_a_key(tmp_path):
    from loadgen.study.sweep import KEYS_PER_SEARCH

    search = scripted(tmp_path, lambda pace, _: min(1.0, pace / 0.4))
    search.execute()
    workers = search.experiment.workload.workers
    keys = [set(range(1 + offset, 1 + offset + workers)) for offset in search.key_offsets]
    assert len(keys) == len(search.calls) >= 4
    assert all(a.isdisjoint(b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    assert 0 not in set().union(*keys)  # the coordinator's key is never a worker's
    assert max(search.key_offsets) < KEYS_PER_SEARCH  # a sweep's next search starts above them all


@pytest.mark.unit
def test_an_interrupted_search_says_so_in_its_file_and_keeps_its_bracket(tmp_path):
    search = scripted(tmp_path, lambda pace, _: min(1.0, pace / 0.4))
    search.interrupt_at = 4  # the brackets and two midpoints ran
    with pytest.raises(KeyboardInterrupt):
        search.execute()
    saved = json.loads((tmp_path / "search.json").read_text())
    assert saved["status"] == "interrupted" and saved["min_pace_s"] is None
    lo, hi = saved["bracket"]
    assert 0.05 <= lo < 0.34 <= hi <= 1.6 and (lo, hi) != (0.05, 1.6)
    # the same command resumes it, running only what is left
    again = scripted(tmp_path, lambda pace, _: min(1.0, pace / 0.4))
    state = again.execute()
    assert state.status == "done" and state.min_value == pytest.approx(0.34, rel=0.05)
    assert again.calls[0] not in search.calls


@pytest.mark.unit
def test_search_png_shows_each_probe_with_its_interval_and_names_every_mark(tmp_path):
    from loadgen.study.search import figure

    search = scripted(tmp_path, lambda pace, _: min(1.0, pace / 0.4))
    state = search.execute()
    fig = figure(state)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "probe passed, 95% interval" in labels and "probe failed, 95% interval" in labels
    assert "threshold 85%" in labels and f"minimum {state.min_value:g}" in labels and "one trial" in labels
    assert any(label.startswith("bracket ") for label in labels)
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 2  # the passed and the failed probes, each with error bars
    assert (tmp_path / "search.png").is_file()


@pytest.mark.unit
def test_a_trial_is_judged_on_what_committed_in_time_not_on_late_inclusions(tmp_path):
    # 91% of the trial landed, but 45% after the commit deadline: its commit ratio is 46%, and
    # the probe fails (a search once passed such a probe on the count that included the late)
    search = scripted(tmp_path, lambda pace, _: 1.0)

    def late(experiment, run_id, index, on_progress=None):
        s = {"scheduled": 408, "committed": 373, "committed_late": 182, "commit_ratio": (373 - 182) / 408}
        return tmp_path / run_id, s | {"latency_p50_s": 1.0, "latency_p95_s": 2.0, "latency_p99_s": 3.0}

    search.run_trial = late
    state = search.execute()
    assert state.status == "hi-fails"
    (probe,) = state.probes
    assert (probe.verdict, probe.committed, probe.scheduled) == ("fail", 191, 408)
    assert probe.commit_ratio == pytest.approx(191 / 408)

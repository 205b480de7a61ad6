"""The minimum-pace search against a chain of known capacity: a proxy in front of Anvil that
accepts at most R worker transactions a second and refuses the rest."""

from __future__ import annotations

import json

import pytest
import ray

from loadgen import config
from loadgen.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.search import Search, verdict, wilson
from tests.faults import FaultProxy, Faults

WORKERS = 8
CAPACITY = 40.0  # tx/s
THRESHOLD = 0.85
# Offered W/pace a second, accepted at most R: the commit ratio (attempts) is R·pace/W past
# capacity, so the smallest pace reaching the threshold is threshold·W/R.
EXPECTED = THRESHOLD * WORKERS / CAPACITY  # 0.17 s


@pytest.fixture(scope="module")
def capped_chain():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    with Devnet(DevnetSettings(block_time_s=0.25)) as node, FaultProxy(node.url, Faults(capacity_tps=CAPACITY)) as proxy:
        yield proxy
    mp.undo()
    ray.shutdown()


def experiment(url: str) -> config.Experiment:
    return config.from_dict(
        {
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
            "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "threshold": THRESHOLD},
        }
    )


def test_wilson_and_verdicts():
    lower, upper = wilson(85, 100)
    assert lower < 0.85 < upper
    assert verdict(100, 100, 0.85, 2)[0] == "pass"
    assert verdict(50, 100, 0.85, 2)[0] == "fail"
    assert verdict(85, 100, 0.85, 2)[0] == "undecided"
    assert verdict(10, 10, 0.85, 1)[0] == "undecided"  # too few to see a 15% failure rate
    assert verdict(900, 1_000, 0.85, 1)[0] == "pass"


def test_search_finds_the_known_minimum_pace_and_resumes(capped_chain, tmp_path):
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
    assert state.min_value == pytest.approx(EXPECTED, rel=0.2)
    lo, hi = state.bracket
    assert (hi - lo) / hi <= 0.1 and hi == state.min_value
    saved = json.loads((tmp_path / "search.json").read_text())
    assert saved["min_pace_s"] == state.min_value
    assert len(saved["trials"]) == len(state.trials) >= 4
    assert all(t["run_dir"] and (tmp_path / "trials").exists() for t in saved["trials"])
    assert (tmp_path / "search.png").is_file()
    # the brackets were checked first
    assert [p["value"] for p in saved["probes"]][:2] == [0.8, 0.05]
    # resuming the finished search re-runs nothing
    again = Search(
        experiment(capped_chain.url), tmp_path, lo=0.05, hi=0.8, tolerance=0.1, run_options={"metrics_port": 0, "metrics_linger_s": 0}
    )
    before = len(again.state.trials)
    assert again.execute().min_value == state.min_value
    assert len(again.state.trials) == before


def test_a_failing_hi_is_reported(capped_chain, tmp_path):
    state = Search(
        experiment(capped_chain.url), tmp_path, lo=0.01, hi=0.05, tolerance=0.1, run_options={"metrics_port": 0, "metrics_linger_s": 0}
    ).execute()
    assert state.status == "hi-fails"
    assert state.min_value is None
    assert any("raise --hi" in n for n in state.notes)
    assert state.trials[0].stopped_early  # hopeless trials stop early

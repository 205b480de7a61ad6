"""Sweeps give the study's figures: min pace per value (capacity proxy), Fig. 1 twice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import image

from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.common.errors import UserError
from loadgen.config import schema as config
from loadgen.study.sweep import Sweep, parse_vary
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import local_ray

RUN = {"metrics_port": 0, "metrics_linger_s": 0}


@pytest.fixture(scope="module")
def with_ray():
    with local_ray():
        yield


@pytest.mark.unit
def test_parse_vary():
    assert parse_vary("workload.redundancy=1,2,4") == ("workload.redundancy", [1, 2, 4])
    assert parse_vary("workload.pace_s=0.5,1") == ("workload.pace_s", [0.5, 1])
    for bad in ("redundancy=1,2", "workload.redundancy", "workload.redundancy=a,b"):
        with pytest.raises(UserError, match=r"workload\.KEY="):
            parse_vary(bad)


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_array_copy_sweep_draws_fig1_both_ways(with_ray, tmp_path):
    experiment = config.from_dict(
        {
            "chain": {"devnet": {"block_time_s": 0.25}, "gas_limit": 5_000_000},
            "workload": {"kind": "array-copy", "array_size": 100, "rate_tps": 10, "duration_s": 1, "workers": 2},
            "run": {"commit_timeout_s": 10, "lead_time_s": 0.5},
        }
    )
    state = Sweep(experiment, tmp_path, "workload.array_size", [100, 5_000], {"repeats": 2}, RUN).execute()
    by_size = {p["value"]: p for p in state["points"] if p["repeat"] == 0}
    assert by_size[100]["committed_pct"] == 100
    assert by_size[5_000]["committed_pct"] == 0  # out of gas: reverted
    assert by_size[5_000]["committed_or_reverted_pct"] == 100  # what the study's tool would have said
    assert len(state["points"]) == 4
    (figure,) = state["figures"]
    pixels = image.imread(figure)
    assert pixels.shape[1] > 1000 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50
    assert json.loads((tmp_path / "sweep.json").read_text())["figures"] == [figure]


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_redundancy_sweep_finds_paces_that_grow_with_the_workers(with_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("LOADGEN_MNEMONIC", DEV_MNEMONIC)
    with Devnet(DevnetSettings(block_time_s=0.25)) as node, FaultProxy(node.url, Faults(capacity_tps=40)) as proxy:
        experiment = config.from_dict(
            {
                "chain": {"endpoints": [proxy.url]},
                "workload": {
                    "kind": "fl-round",
                    "model_length": 2_000,
                    "chunk_size": 100,
                    "redundancy": 2,
                    "pools": 2,
                    "pace_s": 1,
                    "max_retries": 20,
                },
                # the sweep's searches are under test, not the generator's precision: the other
                # tests on a busy machine must not make a trial INVALID (lag over 0.1 s)
                "run": {"commit_timeout_s": 10, "lead_time_s": 0.5, "max_lag_s": 1.0},
            }
        )
        search = {"lo": 0.025, "hi": 0.4, "tolerance": 0.4}
        state = Sweep(experiment, tmp_path, "workload.redundancy", [1, 4], search, RUN).execute()
    paces = {s["value"]: s["min_pace_s"] for s in state["searches"]}
    # 2 and 8 workers against 40 tx/s: 0.85·W/40 = 0.0425 s and 0.17 s
    assert paces[1] == pytest.approx(0.0425, rel=0.6)
    assert paces[4] == pytest.approx(0.17, rel=0.5)
    assert paces[4] > 2 * paces[1]
    assert state["figures"][0].endswith("fig2-redundancy.png")

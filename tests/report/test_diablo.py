"""Diablo result files import with the counts the JSON itself gives."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from loadgen.report.diablo import import_file


def diablo_file(path, seed=0):
    rng = np.random.default_rng(seed)
    locations = []
    for _ in range(2):
        clients = []
        for _ in range(3):
            interactions = []
            for k in range(50):
                submit = -1 if rng.random() < 0.05 else round(k * 0.01 + rng.random() * 0.001, 6)
                kind = rng.random()
                commit = round(submit + rng.gamma(2, 0.3), 6) if submit >= 0 and kind < 0.8 else -1
                abort = round(submit + 0.1, 6) if submit >= 0 and commit < 0 and kind < 0.9 else -1
                interactions.append(
                    {"SubmitTime": submit, "CommitTime": commit, "AbortTime": abort, "HasError": bool(submit >= 0 and 0.9 <= kind < 0.93)}
                )
            clients.append({"Interactions": interactions})
        locations.append({"Clients": clients})
    path.write_text(json.dumps({"Locations": locations}))
    return locations


def direct_counts(locations):
    counts = {"committed": 0, "rejected": 0, "dropped": 0, "unsent": 0}
    for loc in locations:
        for client in loc["Clients"]:
            for it in client["Interactions"]:
                if it["SubmitTime"] < 0:
                    counts["unsent"] += 1
                elif it["CommitTime"] >= 0:
                    counts["committed"] += 1
                elif it["HasError"] or it["AbortTime"] >= 0:
                    counts["rejected"] += 1
                else:
                    counts["dropped"] += 1
    return counts


@pytest.mark.unit
def test_import_keeps_the_files_counts(tmp_path):
    locations = diablo_file(tmp_path / "result.json")
    run_dir = import_file(tmp_path / "result.json", tmp_path / "runs", 0.85)
    table = pq.read_table(run_dir / "transactions.parquet")
    summary = json.loads((run_dir / "summary.json").read_text())
    expected = direct_counts(locations)
    assert table.num_rows == 2 * 3 * 50 == summary["scheduled"]
    for status, n in expected.items():
        assert summary[status] == n
    assert summary["reverted"] == 0  # Diablo cannot tell them apart
    assert len(summary["caveats"]) == 2 and "reverted" in summary["caveats"][0]
    lat = [
        it["CommitTime"] - it["SubmitTime"]
        for loc in locations
        for c in loc["Clients"]
        for it in c["Interactions"]
        if it["CommitTime"] >= 0 and it["SubmitTime"] >= 0
    ]
    assert summary["latency_p50_s"] == np.percentile(lat, 50)
    assert len(set(table.column("worker").to_pylist())) == 6


@pytest.mark.subprocess
def test_cli_import_then_report(tmp_path):
    diablo_file(tmp_path / "r1.json", seed=1)
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "import", "diablo", str(tmp_path / "r1.json"), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "caveat: Diablo counts a reverted transaction as committed" in result.stdout
    report = subprocess.run(
        [sys.executable, "-m", "loadgen", "report", str(tmp_path / "runs" / "diablo-r1")], capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    assert "caveat" in report.stdout and (tmp_path / "runs" / "diablo-r1" / "report.html").is_file()


@pytest.mark.subprocess
def test_not_a_diablo_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text('{"foo": 1}')
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "import", "diablo", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.startswith("loadgen: error:") and "not a Diablo result file" in result.stderr

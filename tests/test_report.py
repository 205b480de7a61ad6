"""Reports: the terminal table, PNG figures (opened and looked at), the HTML page, comparisons."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from matplotlib import image

from actors.collector import TX_SCHEMA
from loadgen.report import summarize
from loadgen.store import RunStore, parts_dir

COMMITTED_RGB = np.array([0x2A, 0x9D, 0x8F]) / 255
THRESHOLD_RGB = np.array([0xE6, 0x39, 0x46]) / 255
CDF_RGB = np.array([0x26, 0x46, 0x53]) / 255


def synthetic_rows(run_id: str, n: int = 400, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    t0 = 1_800_000_000.0
    scheduled = t0 + np.arange(n) * 0.05
    status = rng.choice(["committed", "reverted", "rejected", "dropped", "unsent"], size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    latency = rng.gamma(2.0, 0.3, size=n)
    included = np.where(np.isin(status, ["committed", "reverted"]), scheduled + latency, np.nan)
    sent = np.where(status == "unsent", np.nan, scheduled + 0.001)
    columns = {
        "run_id": [run_id] * n, "trial": [0] * n, "epoch": [0] * n, "round_id": [1] * n, "worker": list(range(n)),
        "pool": [0] * n, "phase": ["reveal"] * n, "chunk_index": [0] * n, "attempt": [1] * n, "nonce": list(range(n)),
        "endpoint": ["http://a"] * n, "node": ["n"] * n, "tx_hash": [f"0x{i:064x}" for i in range(n)], "size_bytes": [32_235] * n,
        "t_scheduled": scheduled, "t_sent": sent, "t_acked": sent, "t_included": included, "block_number": [None] * n,
        "block_timestamp": included, "status": status, "error": [None] * n, "gas_used": [None] * n,
        "latency_s": included - scheduled, "resends": [0] * n,
    }  # fmt: skip
    table = pa.table(columns, schema=TX_SCHEMA)
    for name in ("t_sent", "t_acked", "t_included", "block_timestamp", "latency_s"):
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name, pa.compute.if_else(pa.compute.is_nan(col), None, col))
    return table


def make_run(root, name: str, seed: int, close: bool = True):
    run_dir = root / name
    store = RunStore(run_dir, flush_s=0)
    table = synthetic_rows(name, seed=seed)
    store.transactions.append(table)
    store.write_json("manifest.json", {"run_id": name, "config": {"run": {"threshold": 0.85}}, "chain": {"chain_id": 1337}})
    if close:
        store.close()
        store.write_json("summary.json", summarize(table, 0.85) | {"run_id": name, "rounds": []})
    return run_dir, table


def report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", "report", *map(str, args)], capture_output=True, text=True, timeout=120)


def has_color(png, rgb, tolerance=0.02) -> bool:
    pixels = image.imread(png)[..., :3]
    return bool((np.abs(pixels - rgb).max(axis=-1) < tolerance).any())


def test_one_run_gives_table_figures_and_a_self_contained_page(tmp_path):
    run_dir, table = make_run(tmp_path, "run-a", seed=1)
    result = report(run_dir)
    assert result.returncode == 0, result.stderr
    committed = int((table.column("status").to_numpy(zero_copy_only=False) == "committed").sum())
    assert f"{committed:,}" in result.stdout and "commit ratio" in result.stdout
    plots = {p.name: p for p in (run_dir / "plots").glob("*.png")}
    assert set(plots) == {"rates.png", "latency.png", "commit_ratio.png", "outcomes.png"}
    for png in plots.values():
        pixels = image.imread(png)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # drawn on, not blank
    assert has_color(plots["rates.png"], COMMITTED_RGB)
    assert has_color(plots["latency.png"], CDF_RGB)
    assert has_color(plots["commit_ratio.png"], THRESHOLD_RGB)  # the threshold line is there
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "src='http" not in page and 'href="http' not in page
    assert "run-a" in page and f"{committed:,}" in page


def test_a_killed_run_is_merged_and_reported(tmp_path):
    run_dir, _ = make_run(tmp_path, "killed", seed=2, close=False)
    assert parts_dir(run_dir / "transactions.parquet").is_dir()
    result = report(run_dir)
    assert result.returncode == 0, result.stderr
    assert "killed" in result.stdout
    assert (run_dir / "transactions.parquet").is_file()


def test_several_runs_side_by_side(tmp_path):
    a, _ = make_run(tmp_path, "run-a", seed=1)
    b, _ = make_run(tmp_path, "run-b", seed=2)
    result = report(a, b, "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    assert "side by side" in result.stdout and "run-a" in result.stdout and "run-b" in result.stdout
    compare = image.imread(tmp_path / "cmp" / "compare.png")
    assert compare.shape[1] > 800
    assert has_color(tmp_path / "cmp" / "compare.png", COMMITTED_RGB)


@pytest.mark.parametrize("bad", ["nonexistent", "empty"])
def test_not_a_run_folder_is_a_clear_error(tmp_path, bad):
    target = tmp_path / bad
    if bad == "empty":
        target.mkdir()
    result = report(target)
    assert result.returncode == 2
    assert result.stderr.startswith("loadgen: error: ") and "Traceback" not in result.stderr


def test_summary_counts_attempts(tmp_path):
    _, table = make_run(tmp_path, "s", seed=3)
    s = summarize(table, 0.85)
    assert s["submitted"] == 400
    assert sum(s[k] for k in ("committed", "reverted", "rejected", "dropped", "unsent")) == 400
    assert s["commit_ratio"] == pytest.approx(s["committed"] / 400)
    assert json.dumps(s)  # JSON-ready

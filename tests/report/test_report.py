"""Reports: the terminal table, PNG figures (opened and looked at), the HTML page, comparisons."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from matplotlib import image

from loadgen.common.paths import REPO_ROOT
from loadgen.engine.store import RunStore, parts_dir
from loadgen.report.data import MIN_WINDOWS, TARGET_WINDOWS, choose_window, clock_of, flatten_config, series_of
from loadgen.report.summary import summarize, summary_rows
from tests.support.runs import synthetic_rows

COMMITTED_RGB = np.array([0x2A, 0x9D, 0x8F]) / 255
THRESHOLD_RGB = np.array([0xE6, 0x39, 0x46]) / 255
CDF_RGB = np.array([0x26, 0x46, 0x53]) / 255


def make_run(root, name: str, seed: int, close: bool = True):
    run_dir = root / name
    store = RunStore(run_dir, flush_s=0)
    table = synthetic_rows(name, seed=seed)
    store.transactions.add(table)
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


@pytest.mark.subprocess
def test_one_run_gives_table_figures_and_a_self_contained_page(tmp_path):
    run_dir, table = make_run(tmp_path, "run-a", seed=1)
    result = report(run_dir)
    assert result.returncode == 0, result.stderr
    committed = int((table.column("status").to_numpy(zero_copy_only=False) == "committed").sum())
    assert f"{committed:,}" in result.stdout and "commit ratio" in result.stdout
    plots = {p.name: p for p in (run_dir / "plots").glob("*.png")}
    assert set(plots) == {"rates.png", "latency.png", "commit_ratio.png", "schedule_lag.png"}  # no blocks recorded: no block chart
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
    assert page.count("<h2>") == len(set(re.findall(r"<h2>([^<]*)</h2>", page)))  # no heading twice
    assert "<td>run.threshold</td><td>0.85</td>" in page  # the config as key → value rows, not JSON


@pytest.mark.subprocess
def test_a_killed_run_is_merged_and_reported(tmp_path):
    run_dir, _ = make_run(tmp_path, "killed", seed=2, close=False)
    assert parts_dir(run_dir / "transactions.parquet").is_dir()
    result = report(run_dir)
    assert result.returncode == 0, result.stderr
    assert "killed" in result.stdout
    assert (run_dir / "transactions.parquet").is_file()


@pytest.mark.subprocess
def test_several_runs_side_by_side(tmp_path):
    a, _ = make_run(tmp_path, "run-a", seed=1)
    b, _ = make_run(tmp_path, "run-b", seed=2)
    result = report(a, b, "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    assert "side by side" in result.stdout and "run-a" in result.stdout and "run-b" in result.stdout
    compare = image.imread(tmp_path / "cmp" / "compare.png")
    assert compare.shape[1] > 800
    assert has_color(tmp_path / "cmp" / "compare.png", COMMITTED_RGB)
    assert has_color(tmp_path / "cmp" / "compare.png", THRESHOLD_RGB)  # each run's threshold over its bar
    # everything under --out: the figures overlaid over time, a page and the numbers
    over_time = tmp_path / "cmp" / "compare_over_time.png"
    assert image.imread(over_time).shape[0] > 600
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "run-a" in page and "run-b" in page
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["runs"] == {"A": "run-a", "B": "run-b"}
    rows = {r["label"]: r for r in data["rows"]}
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    expected = f"{(sb['committed'] - sa['committed']) / sa['committed']:+.1%}"
    assert rows["committed"]["change_from_A"] == [expected]
    assert rows["commit ratio"]["change_from_A"] == [f"{(sb['commit_ratio'] - sa['commit_ratio']) * 100:+.1f} pt"]
    assert "B vs A" in result.stdout and expected in result.stdout
    # the two synthetic runs share their configuration: said so, not an empty table
    assert data["config_differences"] == {} and "the same in every run" in result.stdout


@pytest.mark.subprocess
def test_a_comparison_names_the_configuration_keys_that_differ(tmp_path):
    a, _ = make_run(tmp_path, "run-a", seed=1)
    b, _ = make_run(tmp_path, "run-b", seed=2)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["config"]["run"]["threshold"] = 0.9
    manifest["config"]["workload"] = {"pace_s": 0.25}
    (b / "manifest.json").write_text(json.dumps(manifest))
    result = report(a, b, "--out", tmp_path / "cmp", "--offline")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["config_differences"] == {"run.threshold": ["0.85", "0.9"], "workload.pace_s": ["–", "0.25"]}
    assert "configuration differences" in result.stdout and "workload.pace_s" in result.stdout


@pytest.mark.subprocess
def test_a_run_without_rows_gives_a_page_without_figures(tmp_path):
    run_dir = tmp_path / "nothing"
    store = RunStore(run_dir, flush_s=0)
    empty = synthetic_rows("nothing").slice(0, 0)
    store.transactions.add(empty)
    store.write_json("manifest.json", {"run_id": "nothing", "config": {"run": {"threshold": 0.85}}})
    store.close()
    store.write_json("summary.json", summarize(empty, 0.85) | {"run_id": "nothing", "rounds": []})
    result = report(run_dir, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["headline"]["scheduled"] == 0
    page = (run_dir / "report.html").read_text()
    assert "data:image/png" not in page and "nothing to draw" in page


@pytest.mark.parametrize("bad", ["nonexistent", "empty"])
@pytest.mark.subprocess
def test_not_a_run_folder_is_a_clear_error(tmp_path, bad):
    target = tmp_path / bad
    if bad == "empty":
        target.mkdir()
    result = report(target)
    assert result.returncode == 2
    assert result.stderr.startswith("loadgen: error: ") and "Traceback" not in result.stderr


@pytest.mark.unit
def test_summary_counts_attempts(tmp_path):
    _, table = make_run(tmp_path, "s", seed=3)
    s = summarize(table, 0.85)
    assert s["scheduled"] == 400
    assert s["sent"] == 400 - s["unsent"]
    assert sum(s[k] for k in ("committed", "reverted", "rejected", "dropped", "unsent")) == 400
    assert s["commit_ratio"] == pytest.approx(s["committed"] / 400)
    assert json.dumps(s)  # JSON-ready


@pytest.mark.unit
def test_the_nodes_answer_time_is_summarised_from_t_sent_to_t_acked(tmp_path):
    _, table = make_run(tmp_path, "a", seed=4)
    sent = table.column("t_sent")
    answers = pa.array(np.linspace(0.0, 0.4, table.num_rows))
    table = table.set_column(table.schema.get_field_index("t_acked"), "t_acked", pc.add(sent, answers))
    s = summarize(table, 0.85)
    unsent = np.isnan(table.column("t_sent").to_numpy(zero_copy_only=False).astype(float))
    expected = np.linspace(0.0, 0.4, table.num_rows)[~unsent]
    assert s["answer_p50_s"] == pytest.approx(np.percentile(expected, 50))
    assert s["answer_p99_s"] == pytest.approx(np.percentile(expected, 99))
    assert ("node answer p99", f"{s['answer_p99_s']:.4f} s") in summary_rows(s)


@pytest.mark.subprocess
def test_files_read_cleanly_in_pandas_polars_and_duckdb(tmp_path):
    import duckdb
    import polars as pl

    run_dir, table = make_run(tmp_path, "readers", seed=4)
    path = run_dir / "transactions.parquet"
    committed = int((table.column("status").to_numpy(zero_copy_only=False) == "committed").sum())
    # pandas is installed apart (scripts/setup.sh: in .venv, pyarrow would import it in every run)
    code = f"import pandas as pd; df = pd.read_parquet({str(path)!r}); "
    code += "print(len(df), (df.status == 'committed').sum(), df.latency_s.isna().sum())"
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT / "build" / "interop")}
    read = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    latency_less = 400 - int(np.isin(table.column("status").to_numpy(zero_copy_only=False), ["committed", "reverted"]).sum())
    assert read == ["400", str(committed), str(latency_less)]
    assert subprocess.run([sys.executable, "-c", "import pandas"], capture_output=True).returncode != 0, "pandas is back in .venv"
    pf = pl.read_parquet(path)
    assert pf.filter(pl.col("status") == "committed").height == committed
    assert pf.schema["t_scheduled"] == pl.Float64
    got = duckdb.sql(f"select count(*) from read_parquet('{path}') where status = 'committed'").fetchall()[0][0]
    assert got == committed


@pytest.mark.subprocess
def test_report_json_is_plain_json_with_the_headline(tmp_path):
    run_dir, table = make_run(tmp_path, "j", seed=5)
    result = report(run_dir, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    status = table.column("status").to_numpy(zero_copy_only=False)
    assert data["headline"]["committed"] == int((status == "committed").sum())
    assert data["headline"]["sent"] == 400 - int((status == "unsent").sum())
    assert data["by_phase"][0]["key"] == "reveal" and data["by_endpoint"][0]["scheduled"] == 400
    assert data["blocks"] is None  # no block was recorded
    assert "run j" in result.stderr  # the table went to stderr


@pytest.mark.parametrize(
    ("span_s", "window_s"),
    [
        (0.0, 1.0),
        (0.5, 0.05),
        (2.0, 0.2),
        (5.0, 0.5),
        (9.0, 0.5),
        (10.0, 1.0),
        (60.0, 1.0),
        (300.0, 5.0),
        (3_600.0, 60.0),
        (86_400.0, 1_800.0),
    ],
)
@pytest.mark.unit
def test_windows_fit_the_runs_length(span_s, window_s):
    assert choose_window(span_s) == window_s


@pytest.mark.unit
def test_windows_give_enough_points_and_never_a_flood():
    for span in np.geomspace(0.3, 30 * 86_400, 400):
        count = span / choose_window(span)
        assert MIN_WINDOWS <= count <= 4 * TARGET_WINDOWS, (span, choose_window(span))
        if span >= MIN_WINDOWS:
            assert choose_window(span) >= 1.0  # finer than a block only when a second leaves too few points


@pytest.mark.unit
def test_series_count_every_row_once(tmp_path):
    _, table = make_run(tmp_path, "w", seed=6)
    clock = clock_of(table)
    s = series_of(table, clock)
    status = table.column("status").to_numpy(zero_copy_only=False)
    assert round(s.scheduled_tps.sum() * clock.window_s) == 400
    assert round(s.committed_tps.sum() * clock.window_s) == int((status == "committed").sum())
    assert round(s.failing_tps.sum() * clock.window_s) == int((status != "committed").sum())
    assert round(s.sent_tps.sum() * clock.window_s) == int((status != "unsent").sum())
    last = clock.start + clock.span_s
    assert clock.bins(np.array([clock.start, last, last + 1, clock.start - 1])).tolist() == [0, len(s.t_s) - 1, -1, -1]


@pytest.mark.unit
def test_config_reads_as_flat_key_value_rows():
    config = {
        "name": "q",
        "chain": {
            "endpoints": ["http://a", "http://b"],
            "chain_id": None,
            "devnet": {"txpool": {"lifetime_s": 10_800, "no_locals": False}},
        },
        "workload": {"profile": {"steps": [{"rate_tps": 5, "duration_s": 10}, {"rate_tps": 7.5, "duration_s": 20}]}, "setup": []},
        "run": {"extra": {}},
    }
    assert flatten_config(config) == [
        ("name", "q"),
        ("chain.endpoints", "http://a, http://b"),
        ("chain.chain_id", "–"),
        ("chain.devnet.txpool.lifetime_s", "10,800"),
        ("chain.devnet.txpool.no_locals", "false"),
        ("workload.profile.steps[0].rate_tps", "5"),
        ("workload.profile.steps[0].duration_s", "10"),
        ("workload.profile.steps[1].rate_tps", "7.5"),
        ("workload.profile.steps[1].duration_s", "20"),
        ("workload.setup", "[]"),
        ("run.extra", "{}"),
    ]


@pytest.mark.chain
@pytest.mark.subprocess
def test_report_looks_dropped_transactions_up_again_and_keeps_what_landed_apart(tmp_path, w3, dev_accounts):
    # a run whose two dropped transactions are looked up later: one the chain holds by then
    run_dir, table = make_run(tmp_path, "late-landing", seed=3)
    sender, receiver = dev_accounts[9], dev_accounts[1]
    nonce = w3.eth.get_transaction_count(sender.address)
    tx = sender.sign_transaction({"to": receiver.address, "value": 1, "gas": 21_000, "gasPrice": 0, "nonce": nonce, "chainId": 1337})
    landed = "0x" + w3.eth.send_raw_transaction(tx.raw_transaction).hex().removeprefix("0x")
    w3.eth.wait_for_transaction_receipt(landed)
    status = table.column("status").to_pylist()
    dropped = [i for i, s in enumerate(status) if s == "dropped"][:2]
    hashes = table.column("tx_hash").to_pylist()
    hashes[dropped[0]] = landed
    keep = [i for i, s in enumerate(status) if s != "dropped" or i in dropped]
    table = table.set_column(table.schema.get_field_index("tx_hash"), "tx_hash", pa.array(hashes)).take(keep)
    (run_dir / "transactions.parquet").unlink()
    pq.write_table(table, run_dir / "transactions.parquet")
    manifest = json.loads((run_dir / "manifest.json").read_text()) | {"endpoints": [w3.provider.endpoint_uri]}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))

    done = report(run_dir)
    assert done.returncode == 0, done.stderr
    assert "1 of 2 dropped landed later (1 committed, 0 reverted" in done.stdout
    reconciled = pq.read_table(run_dir / "reconciled.parquet").to_pylist()
    assert [(r["tx_hash"], r["status"]) for r in reconciled] == [(landed, "committed")]
    assert json.loads((run_dir / "summary.json").read_text())["dropped"] >= 2  # the run's own verdict is left as it was
    assert report(run_dir, "--offline").stdout.count("landed later") == 0

"""Live metrics scraped by a real Prometheus; dashboards and Prometheus files that tools accept."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from loadgen.devnet import DEV_MNEMONIC, free_port
from loadgen.gethnet import GethNetwork, GethNetworkSettings
from loadgen.run import Run
from tests.engine import fl_experiment, local_ray
from tests.faults import FaultProxy, Faults

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
sys.path.insert(0, str(GRAFANA))
import build as dashboards  # noqa: E402


def query(prom: str, expr: str, at: float) -> list:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory):
    """A run on a 2-node geth network with some refused sends, the run and the nodes scraped
    every second by Prometheus from start to end."""
    tmp = tmp_path_factory.mktemp("prom")
    metrics_port, prom_port = free_port(), free_port()
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "loadgen", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                    # the chain's nodes, found the way grafana/prometheus/prometheus.yml finds them
                    {
                        "job_name": "loadgen-nodes",
                        "metrics_path": "/debug/metrics/prometheus",
                        "file_sd_configs": [{"files": [str(tmp / "targets" / "*.json")], "refresh_interval": "1s"}],
                    },
                ],
            }
        )
    )
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        nodes = GethNetwork(GethNetworkSettings(nodes=2, prometheus_targets=tmp / "targets" / "nodes.json"))
        with local_ray(mnemonic=DEV_MNEMONIC), nodes, FaultProxy(nodes.urls[0], Faults(reject_every=7)) as proxy:
            run = Run(
                fl_experiment([proxy.url], model_length=20_000, pace_s=0.25),
                tmp / "runs",
                metrics_port=metrics_port,
                metrics_addr="127.0.0.1",
            )
            scrapes: list[str] = []

            def scrape_while_running() -> None:
                while not done.is_set():
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
                            scrapes.append(r.read().decode())
                    except OSError:
                        pass
                    time.sleep(1)

            done = threading.Event()
            watcher = threading.Thread(target=scrape_while_running, daemon=True)
            watcher.start()
            result = run.execute()
            ended = time.time()
            done.set()
        time.sleep(1.5)
        # the endpoint lingered 2 s after the final update: the last scrape holds the final counts
        yield {"prom": f"http://127.0.0.1:{prom_port}", "run": run, "result": result, "at": ended - 0.5, "scrapes": scrapes}
    finally:
        prom.terminate()
        prom.wait(10)


def panel_queries():
    for uid, (_, panels) in dashboards.DASHBOARDS.items():
        for title, _, targets in panels:
            for legend, expr in targets:
                yield pytest.param(expr, id=f"{uid}:{title}:{legend}")


@pytest.mark.parametrize("expr", list(panel_queries()))
@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_every_panel_query_returns_data(scraped_run, expr):
    concrete = expr.replace("$run_id", scraped_run["run"].run_id).replace("$__rate_interval", "20s").replace("$node", ".+")
    result = query(scraped_run["prom"], concrete, scraped_run["at"])
    assert result, f"no data for {concrete}"


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_counters_match_the_parquet_rows(scraped_run):
    rid = scraped_run["run"].run_id
    summary = scraped_run["result"].summary
    at = scraped_run["at"]
    by_outcome = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in query(scraped_run["prom"], f'sum by (outcome) (loadgen_transactions_total{{run_id="{rid}"}})', at)
    }
    assert summary["rejected"] > 0
    for outcome in ("committed", "rejected", "reverted", "dropped", "unsent"):
        assert by_outcome[outcome] == summary[outcome]
    assert by_outcome["scheduled"] == summary["scheduled"]
    ratio = query(scraped_run["prom"], f'loadgen_commit_ratio{{run_id="{rid}"}}', at)
    assert float(ratio[0]["value"][1]) == pytest.approx(summary["commit_ratio"])


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_the_endpoint_moved_while_the_run_went(scraped_run):
    scrapes = scraped_run["scrapes"]
    assert len(scrapes) >= 5

    def committed(text: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("loadgen_transactions_total{") and 'outcome="committed"' in line
        )

    values = [committed(s) for s in scrapes]
    assert values == sorted(values) and values[-1] > values[0]
    assert len({v for v in values}) >= 3  # it grew in steps, live, not once at the end


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_no_worker_address_or_key_in_metrics(scraped_run):
    text = scraped_run["scrapes"][-1].lower()
    from loadgen.accounts import MnemonicSource, derive_account

    for i in range(1, 5):
        account = derive_account(MnemonicSource("t", DEV_MNEMONIC), i)
        assert account.address.lower()[2:] not in text
        assert bytes(account.key).hex() not in text
    assert "test test test" not in text


@pytest.mark.subprocess
def test_promtool_accepts_config_and_rules():
    subprocess.run(["promtool", "check", "config", str(GRAFANA / "prometheus" / "prometheus.yml")], check=True, capture_output=True)
    subprocess.run(["promtool", "check", "rules", str(GRAFANA / "prometheus" / "rules.yml")], check=True, capture_output=True)


@pytest.mark.unit
def test_dashboards_are_built_from_build_py():
    for name, text in dashboards.render().items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, f"{name} is stale: run python grafana/build.py"


@pytest.mark.unit
def test_dashboards_have_what_grafana_provisioning_needs():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "loadgen.yml").read_text())["providers"][0]
    compose = yaml.safe_load((GRAFANA / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards:{provider['options']['path']}:ro" in mounts
    uids = set()
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    expected = {"loadgen-overview", "loadgen-endpoints", "loadgen-chain", "loadgen-generator", "loadgen-search", "loadgen-nodes"}
    assert {f.stem for f in files} == expected
    for path in files:
        d = json.loads(path.read_text())
        assert d["uid"] and d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        assert d["title"] and isinstance(d["schemaVersion"], int)
        (variable,) = (v["name"] for v in d["templating"]["list"])
        assert variable == ("node" if d["uid"] == "loadgen-nodes" else "run_id")
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            assert p["datasource"]["uid"] == datasource["uid"]
            assert set(p["gridPos"]) == {"h", "w", "x", "y"}
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
            assert all(f'{variable}=~"${variable}"' in t["expr"] for t in p["targets"])

"""Live metrics scraped by a real Prometheus; dashboards and Prometheus files that tools accept."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from loadgen.chains.devnet import DEV_MNEMONIC, free_port
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.engine.metrics import MetricsServer, RunMetrics
from loadgen.engine.run import Run
from tests.support.faults import FaultProxy, Faults
from tests.support.runs import fl_experiment, local_ray

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
sys.path.insert(0, str(GRAFANA))
import build as dashboards  # noqa: E402


def query(prom: str, expr: str, at: float, until: float | None = None) -> list:
    """An instant query at ``at``, or a range query from ``at`` to ``until`` a second apart."""
    args = (
        {"query": expr, "time": f"{at:.3f}"} if until is None else {"query": expr, "start": f"{at:.3f}", "end": f"{until:.3f}", "step": "1"}
    )
    url = f"{prom}/api/v1/{'query' if until is None else 'query_range'}?" + urllib.parse.urlencode(args)
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


BUILT = {name.removesuffix(".json"): json.loads(text) for name, text in dashboards.render().items()}
# what Grafana puts in place of its variables, for a run scraped within the last hour
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__interval": "10s", "$__range": "1h", "$node": ".+"}


def concrete(expr: str, run_id: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr.replace("$run_id", run_id)


def variable_query(d: dict) -> str:
    """The PromQL inside the dashboard's variable query (label_values and query_result)."""
    (variable,) = d["templating"]["list"]
    definition = variable["definition"]
    if definition.startswith("label_values("):
        metric, _, _ = definition.removeprefix("label_values(").rpartition(",")
        return metric
    return definition.removeprefix("query_result(").removesuffix(")")


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory):
    """A run on a 2-node geth network with some refused sends, the run and the nodes scraped
    every second by Prometheus from start to end."""
    tmp = tmp_path_factory.mktemp("prom")
    metrics_port, earlier_port, prom_port = free_port(), free_port(), free_port()
    # a run that started before the one under test, with an id that sorts after it
    earlier = RunMetrics("zz-earlier-run", "earlier", "transfer", 0.5)
    earlier_server = MetricsServer(earlier_port, "127.0.0.1", linger_s=0)
    earlier_server.show(earlier)
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "loadgen", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}", f"127.0.0.1:{earlier_port}"]}]},
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
            started = time.time()
            result = run.execute()
            ended = time.time()
            done.set()
        time.sleep(1.5)
        # the endpoint lingered 2 s after the final update: the last scrape holds the final counts
        yield {
            "prom": f"http://127.0.0.1:{prom_port}", "run": run, "result": result, "started": started, "at": ended - 0.5,
            "scrapes": scrapes,
        }  # fmt: skip
    finally:
        prom.terminate()
        prom.wait(10)
        earlier_server.close()


def query_result_text(row: dict) -> str:
    """A query_result row as Grafana writes it before it applies the variable's regex."""
    labels = ",".join(f'{k}="{v}"' for k, v in row["metric"].items() if k != "__name__")
    return f"{row['metric'].get('__name__', '')}{{{labels}}} {row['value'][1]} {row['value'][0] * 1000}"


def dashboard_queries():
    """Every query the dashboards send: the panels', the annotations' and the variables'."""
    for uid, d in BUILT.items():
        for p in d["panels"]:
            for t in p["targets"]:
                yield pytest.param(t["expr"], id=f"{uid}:{p['title']}:{t['refId']}")
        for a in d["annotations"]["list"]:
            yield pytest.param(a["expr"], id=f"{uid}:annotation:{a['name']}")
        yield pytest.param(variable_query(d), id=f"{uid}:variable")


@pytest.mark.parametrize("expr", list(dashboard_queries()))
@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_every_panel_query_returns_data(scraped_run, expr):
    promql = concrete(expr, scraped_run["run"].run_id)
    result = query(scraped_run["prom"], promql, scraped_run["at"])
    assert result, f"no data for {promql}"


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_the_run_variable_lists_the_newest_run_first(scraped_run):
    rid = scraped_run["run"].run_id
    assert rid < "zz-earlier-run"  # sorting the ids would put the earlier run first
    (variable,) = BUILT["loadgen-overview"]["templating"]["list"]
    answer = query(scraped_run["prom"], concrete(variable_query(BUILT["loadgen-overview"]), rid), scraped_run["at"])
    # Grafana applies the regex to each result written as `{labels} value`, in the order Prometheus gives
    regex = re.compile(variable["regex"].strip("/"))
    listed = [regex.search(query_result_text(r))[1] for r in answer]
    assert listed == [rid, "zz-earlier-run"]


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_phases_were_marked_one_after_the_other(scraped_run):
    run, prom = scraped_run["run"], scraped_run["prom"]
    series = query(prom, f'loadgen_phase{{run_id="{run.run_id}"}}', scraped_run["started"], scraped_run["at"])
    running = {(s["metric"]["phase"], s["metric"]["epoch"]): [float(t) for t, v in s["values"] if v == "1"] for s in series}
    assert {phase for phase, _ in running} == {p.name for p in run.plan.phases}
    spans = sorted((min(ts), max(ts)) for ts in running.values())
    assert all(first_end < second_start for (_, first_end), (second_start, _) in itertools.pairwise(spans))
    final = query(prom, f'loadgen_phase{{run_id="{run.run_id}"}}', scraped_run["at"])
    assert {r["value"][1] for r in final} == {"0"}  # all of them ended


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_the_commit_ratio_stat_gets_its_threshold_steps(scraped_run):
    (panel,) = (p for p in BUILT["loadgen-overview"]["panels"] if p["title"] == "Commit ratio")
    (config,) = (t for t in panel["targets"] if t["refId"] == panel["transformations"][0]["options"]["configRefId"])
    (row,) = query(scraped_run["prom"], concrete(config["expr"], scraped_run["run"].run_id), scraped_run["at"])
    # Grafana reads the table's columns in order: `below` becomes the red base, the value the green step
    mapped = [m["fieldName"] for m in panel["transformations"][0]["options"]["mappings"]]
    assert mapped == ["below", "Value"]
    assert row["metric"] == {"below": "0"}
    assert float(row["value"][1]) == scraped_run["run"].experiment.run.threshold


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.chaos
@pytest.mark.slow
def test_the_endpoint_table_has_every_column_for_every_endpoint(scraped_run):
    (panel,) = (p for p in BUILT["loadgen-endpoints"]["panels"] if p["type"] == "table")
    rid = scraped_run["run"].run_id
    columns = {}
    for t in panel["targets"]:
        rows = query(scraped_run["prom"], concrete(t["expr"], rid), scraped_run["at"])
        columns[t["refId"]] = {(r["metric"]["run_id"], r["metric"]["endpoint"]): float(r["value"][1]) for r in rows}
    endpoints = {(rid, e) for e in scraped_run["run"].manifest["endpoints"]}
    assert all(set(rows) == endpoints for rows in columns.values())  # Grafana's merge makes one full row per endpoint
    sent, committed, failing, _, up = columns.values()
    summary = scraped_run["result"].summary
    assert sum(committed.values()) == summary["committed"]
    assert sum(failing.values()) == sum(summary[k] for k in ("reverted", "rejected", "dropped", "unsent"))
    assert all(sent[k] >= committed[k] for k in endpoints) and set(up.values()) == {1.0}


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
    from loadgen.config.accounts import MnemonicSource, derive_account

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


@pytest.mark.unit
def test_the_compose_stack_reaches_the_run_and_the_nodes_on_the_hosts_network():
    """The nodes of an embedded network listen on 127.0.0.1: a Prometheus in a bridge network
    could never scrape them. The stack as shipped runs on the host's network, scrapes the run on
    localhost and the nodes from the target files loadgen writes, and Grafana finds Prometheus
    on localhost."""
    from loadgen.engine.session import targets_file

    compose = yaml.safe_load((GRAFANA / "docker-compose.yml").read_text())["services"]
    assert {name: service.get("network_mode") for name, service in compose.items()} == {"prometheus": "host", "grafana": "host"}
    assert not any("ports" in service for service in compose.values())  # no port mapping on the host's network
    assert "./prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://localhost:9090"
    jobs = {job["job_name"]: job for job in yaml.safe_load((GRAFANA / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs["loadgen"]["static_configs"] == [{"targets": ["localhost:9464"]}]
    (files,) = (sd["files"] for sd in jobs["loadgen-nodes"]["file_sd_configs"])
    written = targets_file("quickstart")
    assert written is not None and written.match(str(GRAFANA / "prometheus" / files[0]))
    assert GethNetworkSettings().host == "127.0.0.1"  # what the target files name, reachable only from the host


AGGREGATION = re.compile(r"\b(sum|avg|min|max|count)\s*(by\s*\(([^)]*)\))?\s*\(")
COUNTS_TRANSACTIONS = re.compile(
    r"\brate\((loadgen_transactions_total|loadgen_chain_transactions_total|loadgen_rpc_errors_total|txpool_\w+)"
)


@pytest.mark.unit
def test_every_panel_says_what_it_shows_per_run_and_in_which_unit():
    for uid, d in BUILT.items():
        per_run = uid != "loadgen-nodes"
        for p in d["panels"]:
            where = f"{uid}: {p['title']}"
            assert len(p.get("description", "")) > 20, f"{where} has no description"
            unit = p["fieldConfig"]["defaults"].get("unit")
            assert unit and unit != "reqps", f"{where}: unit {unit!r}"
            config = {tr["options"]["configRefId"] for tr in p.get("transformations", []) if tr["id"] == "configFromData"}
            shown = [t for t in p["targets"] if t["refId"] not in config]
            for t in shown:
                if COUNTS_TRANSACTIONS.search(t["expr"]) and " / " not in t["expr"]:
                    assert unit == "suffix:tx/s", f"{where} counts transactions per second in {unit!r}"
                if not per_run:
                    continue
                assert "{{run_id}}" in t["legendFormat"], f"{where}: legend {t['legendFormat']!r} blends runs"
                for m in AGGREGATION.finditer(t["expr"]):
                    assert m[2] and "run_id" in m[3].split(", "), f"{where}: {m[0]!r} sums runs together"


@pytest.mark.unit
def test_run_dashboards_open_on_the_newest_run_with_its_phases_marked():
    for uid, d in BUILT.items():
        (variable,) = d["templating"]["list"]
        if uid == "loadgen-nodes":
            assert not d["annotations"]["list"]
            continue
        # no All option and no saved choice: Grafana selects the first option, the query's first row
        assert (variable["includeAll"], variable["current"], variable["sort"]) == (False, {}, 0)
        assert "sort_desc" in variable["definition"] and "loadgen_run_start_timestamp_seconds" in variable["definition"]
        names = {a["name"]: a for a in d["annotations"]["list"]}
        assert set(names) == {"Run", "Phases"}
        assert all('run_id=~"$run_id"' in a["expr"] for a in names.values())
        assert "loadgen_phase" in names["Phases"]["expr"] and "{{phase}}" in names["Phases"]["titleFormat"]


@pytest.mark.unit
def test_phase_marks_and_per_endpoint_answers_in_the_registry():
    from prometheus_client import generate_latest

    m = RunMetrics("r1", "n", "transfer", 0.9)
    m.init_series(["http://a", "http://b"], ["commit"])
    m.phase("commit", 0, running=True)
    text = generate_latest(m.registry).decode()
    assert 'loadgen_phase{epoch="0",phase="commit",run_id="r1"} 1.0' in text
    assert 'loadgen_node_answer_seconds_count{endpoint="http://b",run_id="r1"} 0.0' in text
    start = float(next(line for line in text.splitlines() if line.startswith("loadgen_run_start_timestamp_seconds{")).split()[-1])
    assert abs(start - time.time()) < 60
    m.phase("commit", 0, running=False)
    assert 'loadgen_phase{epoch="0",phase="commit",run_id="r1"} 0.0' in generate_latest(m.registry).decode()


@pytest.mark.unit
def test_a_series_target_serves_the_run_under_way_and_the_one_before():
    from prometheus_client.parser import text_string_to_metric_families

    server = MetricsServer(free_port(), "127.0.0.1", linger_s=0)
    try:
        for n in (1, 2, 3):
            m = RunMetrics(f"trial-{n}", "s", "fl-round", 0.85)
            m.init_series(["http://a"], ["reveal"])
            m.commit_ratio.labels(m.run_id).set(n / 10)
            server.show(m)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.close()
    # one family per name (a name twice fails the whole scrape), both runs' samples in it
    assert text.count("# TYPE loadgen_commit_ratio gauge") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ratios = {s.labels["run_id"]: s.value for s in families["loadgen_commit_ratio"].samples}
    assert ratios == {"trial-2": 0.2, "trial-3": 0.3}

"""Writes grafana/dashboards/*.json from the panel lists below (run: python grafana/build.py).

One place defines every panel's PromQL, so the dashboards stay consistent and a test can run
every query, annotation and variable against a real Prometheus. Every query of a run's dashboard
is filtered by the `run_id` variable, keeps `run_id` in its `by (...)` and names it in its legend,
so several selected runs never blend into one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROMETHEUS = {"type": "prometheus", "uid": "loadgen-prometheus"}
R = 'run_id=~"$run_id"'
RATE = "$__rate_interval"
N = 'job="loadgen-nodes",node=~"$node"'
TX_S = "suffix:tx/s"  # Grafana has no transactions-per-second unit; "reqps" would say req/s
FAILING = 'outcome=~"reverted|rejected|dropped|unsent"'
SCHEDULED = 'outcome="scheduled"'

Json = dict[str, Any]
Target = tuple[str, str]  # (legend, expr)


def tx_rate(selector: str, by: str = "") -> str:
    """Transactions per second of the selected outcomes, per run (and ``by``)."""
    return f"sum by (run_id{by}) (rate(loadgen_transactions_total{{{R},{selector}}}[{RATE}]))"


# of the transactions final in a rate window, the share that did not commit ("scheduled" counts every final one)
FAILING_SHARE = f"{tx_rate(FAILING)} / {tx_rate(SCHEDULED)}"


def q(quantile: float, metric: str, by: str = "") -> str:
    return f"histogram_quantile({quantile}, sum by (run_id{by}, le) (rate({metric}_bucket{{{R}}}[{RATE}])))"


def target(k: int, legend: str, expr: str, *, table: bool = False) -> Json:
    t = {"refId": chr(ord("A") + k), "expr": expr, "legendFormat": legend, "datasource": PROMETHEUS}
    if table:  # one row per series at the end of the time range
        t |= {"format": "table", "instant": True, "range": False}
    return t


def timeseries(title: str, unit: str, description: str, *targets: Target) -> Json:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [target(k, legend, expr) for k, (legend, expr) in enumerate(targets)],
    }


def steps(*colours: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in colours]}


def stat(title: str, unit: str, description: str, expr: str, *colours: tuple[str, float | None]) -> Json:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit, "color": {"mode": "thresholds"}, "thresholds": steps(*colours)}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
        "targets": [target(0, "{{run_id}}", expr)],
    }


def commit_ratio_stat() -> Json:
    """The commit ratio, red under the run's threshold and green at or above it. Grafana's
    "config from query results" turns each mapped column of query B into a threshold step, in
    column order, and makes the first step the base: B's `below` label (0) is the red base, its
    value (the threshold) the green step. Without B's data the panel's own steps (the default
    threshold, 0.85) stand."""
    panel = stat(
        "Commit ratio",
        "percentunit",
        "Committed / transactions final so far, since the run started. Green at or above the run's threshold "
        "(run.threshold, from loadgen_threshold_ratio), red under it: the run's exit code is 0 when it ends green.",
        f"loadgen_commit_ratio{{{R}}}",
        ("red", None),
        ("green", 0.85),
    )
    below = f'label_replace(max(loadgen_threshold_ratio{{{R}}}), "below", "0", "__name__", ".*")'
    panel["targets"].append(target(1, "threshold", below, table=True))
    panel["transformations"] = [
        {
            "id": "configFromData",
            "options": {
                "configRefId": "B",
                "mappings": [
                    {"fieldName": "below", "handlerKey": "threshold1", "handlerArguments": {"threshold": {"color": "red"}}},
                    {"fieldName": "Value", "handlerKey": "threshold1", "handlerArguments": {"threshold": {"color": "green"}}},
                ],
            },
        }
    ]
    panel["fieldConfig"]["defaults"] |= {"min": 0, "max": 1}
    return panel


ENDPOINT_COLUMNS = {  # column → (unit, instant query over the time range: the run's final figures)
    "sent": ("short", f'sum by (run_id, endpoint) (max_over_time(loadgen_transactions_total{{{R},outcome="sent"}}[$__range]))'),
    "committed": (
        "short",
        f'sum by (run_id, endpoint) (max_over_time(loadgen_transactions_total{{{R},outcome="committed"}}[$__range]))',
    ),
    "failing": ("short", f"sum by (run_id, endpoint) (max_over_time(loadgen_transactions_total{{{R},{FAILING}}}[$__range]))"),
    "answer p95": (
        "s",
        f"histogram_quantile(0.95, sum by (run_id, endpoint, le) (max_over_time(loadgen_node_answer_seconds_bucket{{{R}}}[$__range])))",
    ),
    "up": ("short", f"min by (run_id, endpoint) (last_over_time(loadgen_endpoint_up{{{R}}}[$__range]))"),
}


def endpoint_table() -> Json:
    names = list(ENDPOINT_COLUMNS)
    values = {f"Value #{chr(ord('A') + k)}": name for k, name in enumerate(names)}
    up = [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]
    return {
        "type": "table",
        "title": "Per endpoint",
        "description": "Each endpoint over the time range: transactions sent to it, committed and failing (reverted, rejected, "
        "dropped, unsent), the p95 time it took to answer eth_sendRawTransaction, and whether it answered at the last word.",
        "fieldConfig": {
            "defaults": {"unit": "short"},
            "overrides": [
                {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
                for name, (unit, _) in ENDPOINT_COLUMNS.items()
            ]
            + [
                {
                    "matcher": {"id": "byName", "options": "up"},
                    "properties": [{"id": "mappings", "value": up}, {"id": "custom.cellOptions", "value": {"type": "color-text"}}],
                }
            ],
        },
        "options": {"showHeader": True, "cellHeight": "sm"},
        "targets": [
            target(k, f"{{{{run_id}}}} {{{{endpoint}}}} {name}", expr, table=True)
            for k, (name, (_, expr)) in enumerate(ENDPOINT_COLUMNS.items())
        ],
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {name: k for k, name in enumerate(["run_id", "endpoint", *values])},
                    "renameByName": values,
                },
            },
        ],
    }


# dashboard uid → (title, panels)
DASHBOARDS: dict[str, tuple[str, list[Json]]] = {
    "loadgen-overview": (
        "loadgen · overview",
        [
            stat(
                "Committed",
                TX_S,
                "Transactions per second that reached a block with a success receipt (counted when final).",
                tx_rate('outcome="committed"'),
                ("green", None),
            ),
            commit_ratio_stat(),
            stat(
                "Failing share",
                "percentunit",
                "Of the transactions that became final in the last rate window, the share that did not commit: "
                "reverted, rejected, dropped or unsent. Orange from 5 %, red from 15 % (what the default threshold, 85 %, allows).",
                FAILING_SHARE,
                ("green", None),
                ("orange", 0.05),
                ("red", 0.15),
            ),
            stat(
                "Inclusion latency p95",
                "s",
                "95th percentile of the time from a transaction's scheduled send to its block being seen, committed ones.",
                q(0.95, "loadgen_inclusion_latency_seconds"),
                ("green", None),
            ),
            stat(
                "In flight",
                "short",
                "Sent and accepted by a node, not yet in a block nor timed out.",
                f"loadgen_in_flight_transactions{{{R}}}",
                ("blue", None),
            ),
            stat(
                "Schedule lag p99",
                "s",
                "99th percentile of how late the generator sent against its schedule. Red from 100 ms (the "
                "LoadgenGeneratorLagging alert): the run then understates the offered load.",
                q(0.99, "loadgen_schedule_lag_seconds"),
                ("green", None),
                ("red", 0.1),
            ),
            timeseries(
                "Scheduled vs committed",
                TX_S,
                "Transactions per second whose outcome became final, all of them (scheduled) and the committed ones. "
                "A gap between the lines is what did not commit.",
                ("{{run_id}} scheduled", tx_rate(SCHEDULED)),
                ("{{run_id}} committed", tx_rate('outcome="committed"')),
            ),
            timeseries(
                "Commit ratio against the threshold",
                "percentunit",
                "Committed / final since the run started, and the ratio the run must reach (run.threshold).",
                ("{{run_id}} commit ratio", f"loadgen_commit_ratio{{{R}}}"),
                ("{{run_id}} threshold", f"loadgen_threshold_ratio{{{R}}}"),
            ),
            timeseries(
                "Failing transactions",
                TX_S,
                "Transactions per second that became final without committing, in all and by outcome: reverted (in a "
                "block, failed), rejected (refused by the node), dropped (accepted, never included), unsent.",
                ("{{run_id}} failing", tx_rate(FAILING)),
                ("{{run_id}} {{outcome}}", tx_rate(FAILING, ", outcome")),
            ),
            timeseries(
                "Failing share",
                "percentunit",
                "Of the transactions that became final in each rate window, the share that did not commit.",
                ("{{run_id}} failing", FAILING_SHARE),
            ),
            timeseries(
                "Inclusion latency",
                "s",
                "Time from a transaction's scheduled send to its block being seen, committed ones: p50, p95, p99.",
                ("{{run_id}} p50", q(0.5, "loadgen_inclusion_latency_seconds")),
                ("{{run_id}} p95", q(0.95, "loadgen_inclusion_latency_seconds")),
                ("{{run_id}} p99", q(0.99, "loadgen_inclusion_latency_seconds")),
            ),
            timeseries(
                "Outcomes",
                "short",
                "Transactions so far by outcome (cumulative): scheduled, sent, then committed, reverted, rejected, dropped, unsent.",
                ("{{run_id}} {{outcome}}", f"sum by (run_id, outcome) (loadgen_transactions_total{{{R}}})"),
            ),
        ],
    ),
    "loadgen-endpoints": (
        "loadgen · endpoints",
        [
            endpoint_table(),
            timeseries(
                "Committed by endpoint",
                TX_S,
                "Committed transactions per second, by the endpoint they were sent to.",
                ("{{run_id}} {{endpoint}}", tx_rate('outcome="committed"', ", endpoint")),
            ),
            timeseries(
                "Sent by endpoint",
                TX_S,
                "Transactions per second sent to each endpoint (counted when final).",
                ("{{run_id}} {{endpoint}}", tx_rate('outcome="sent"', ", endpoint")),
            ),
            timeseries(
                "Failing by endpoint",
                TX_S,
                "Transactions per second that did not commit (reverted, rejected, dropped, unsent), by endpoint.",
                ("{{run_id}} {{endpoint}}", tx_rate(FAILING, ", endpoint")),
            ),
            timeseries(
                "Refused sends by endpoint and kind",
                TX_S,
                "Sends the endpoint refused, per second, by kind: rpc (an error answer), http, timeout, connection.",
                ("{{run_id}} {{endpoint}} {{kind}}", f"sum by (run_id, endpoint, kind) (rate(loadgen_rpc_errors_total{{{R}}}[{RATE}]))"),
            ),
            timeseries(
                "Node answer time by endpoint (p95)",
                "s",
                "95th percentile of the time each endpoint took to answer eth_sendRawTransaction.",
                ("{{run_id}} {{endpoint}}", q(0.95, "loadgen_node_answer_seconds", ", endpoint")),
            ),
            timeseries(
                "Transaction pools",
                "short",
                "Each node's transaction pool (txpool_status): pending (executable) and queued (waiting for a nonce).",
                ("{{run_id}} {{endpoint}} {{state}}", f"loadgen_txpool_transactions{{{R}}}"),
            ),
            timeseries(
                "Endpoint up (1) or down (0)",
                "short",
                "1 while an endpoint answers; 0 from when a sender or a watcher found it down (run.failover_after bad "
                "answers) until it answers again.",
                ("{{run_id}} {{endpoint}}", f"loadgen_endpoint_up{{{R}}}"),
            ),
        ],
    ),
    "loadgen-chain": (
        "loadgen · chain",
        [
            timeseries("Head block", "short", "Number of the newest block seen.", ("{{run_id}}", f"loadgen_chain_head_block{{{R}}}")),
            timeseries(
                "Block interval",
                "s",
                "Time between the last two blocks, by their timestamps.",
                ("{{run_id}}", f"loadgen_block_interval_seconds{{{R}}}"),
            ),
            timeseries(
                "Transactions per block",
                "short",
                "Transactions in the newest block, anyone's.",
                ("{{run_id}}", f"loadgen_block_transactions{{{R}}}"),
            ),
            timeseries(
                "Block fullness (gas used / gas limit)",
                "percentunit",
                "Gas used by the newest block over its gas limit: near 100 % the chain, not the generator, is the limit.",
                ("{{run_id}}", f"loadgen_block_gas_used{{{R}}} / loadgen_block_gas_limit{{{R}}}"),
            ),
            timeseries(
                "Chain throughput",
                TX_S,
                "Transactions per second in the blocks seen, anyone's (loadgen's and others').",
                ("{{run_id}}", f"rate(loadgen_chain_transactions_total{{{R}}}[{RATE}])"),
            ),
            timeseries(
                "Gas per second",
                "suffix:gas/s",
                "Gas used per second by the blocks seen.",
                ("{{run_id}}", f"rate(loadgen_chain_gas_used_total{{{R}}}[{RATE}])"),
            ),
            timeseries(
                "Transaction pools",
                "short",
                "Each node's transaction pool (txpool_status): pending (executable) and queued (waiting for a nonce).",
                ("{{run_id}} {{endpoint}} {{state}}", f"loadgen_txpool_transactions{{{R}}}"),
            ),
            timeseries(
                "Block watcher lag",
                "s",
                "How long the oldest block the slowest watcher has not read yet has existed (0: up to date). While it is "
                "behind, inclusions are recorded late and the drain waits for it before calling anything dropped.",
                ("{{run_id}} seconds", f"loadgen_watcher_lag_seconds{{{R}}}"),
            ),
            timeseries(
                "Included after the commit deadline",
                TX_S,
                "Transactions included after their phase's commit deadline: on the chain, not in the commit ratio.",
                ("{{run_id}}", f"rate(loadgen_late_transactions_total{{{R}}}[{RATE}])"),
            ),
        ],
    ),
    "loadgen-generator": (
        "loadgen · generator health",
        [
            timeseries(
                "Schedule lag",
                "s",
                "How late the generator sent against its schedule, p50 and p99. Above 100 ms the run understates the offered load.",
                ("{{run_id}} p50", q(0.5, "loadgen_schedule_lag_seconds")),
                ("{{run_id}} p99", q(0.99, "loadgen_schedule_lag_seconds")),
            ),
            timeseries(
                # above the pace, a client that waits for answers would fall behind; loadgen does not (open model)
                "Node answer time (eth_sendRawTransaction) against the pace",
                "s",
                "Time the nodes took to answer a send, p50 and p99 over all endpoints, against the pace (a worker's time "
                "between two sends). Above the pace a closed-loop client would fall behind; loadgen's open model does not.",
                ("{{run_id}} p50", q(0.5, "loadgen_node_answer_seconds")),
                ("{{run_id}} p99", q(0.99, "loadgen_node_answer_seconds")),
                ("{{run_id}} pace", f"loadgen_pace_seconds{{{R}}}"),
            ),
            timeseries(
                "Refused sends",
                TX_S,
                "Sends the nodes refused, per second, by kind: rpc (an error answer), http, timeout, connection.",
                ("{{run_id}} {{kind}}", f"sum by (run_id, kind) (rate(loadgen_rpc_errors_total{{{R}}}[{RATE}]))"),
            ),
            timeseries(
                "Nonce gaps recovered",
                "short",
                "Accepted transactions a node lost and loadgen sent again (cumulative).",
                ("{{run_id}}", f"loadgen_nonce_gaps_recovered_total{{{R}}}"),
            ),
            timeseries(
                "Failovers (a worker moved off a down endpoint)",
                "short",
                "Times a worker moved off its endpoint because it was down (cumulative).",
                ("{{run_id}}", f"loadgen_failovers_total{{{R}}}"),
            ),
            timeseries(
                "In flight",
                "short",
                "Sent and accepted by a node, not yet in a block nor timed out.",
                ("{{run_id}}", f"loadgen_in_flight_transactions{{{R}}}"),
            ),
            timeseries(
                "Busiest sender actor's CPU (share of one core)",
                "percentunit",
                "CPU of the busiest sender actor's process over the last second, as a share of one core. Held near 100 % "
                "the generator has no time left to keep its schedule: add actors (run.actors) or Ray nodes.",
                ("{{run_id}}", f"loadgen_sender_cpu_busy_ratio{{{R}}}"),
            ),
            timeseries(
                "Generator-bound verdict",
                "short",
                "1 when the run ended with its senders behind schedule or out of CPU: its commit ratio measured the "
                "generator, not the chain (summary.json's generator_bound). Set at the end of a run.",
                ("{{run_id}}", f"loadgen_generator_bound{{{R}}}"),
            ),
        ],
    ),
    # The chain's own nodes (geth, GoQuorum), scraped from their --metrics ports: not per run.
    "loadgen-nodes": (
        "loadgen · nodes",
        [
            timeseries(
                "CPU per node (% of one core)",
                "percent",
                "Each node process's CPU (system_cpu_procload), 100 % = one core.",
                ("{{node}}", f"system_cpu_procload{{{N}}}"),
            ),
            timeseries(
                "Memory per node (Go heap held)",
                "bytes",
                "Go heap each node holds (system_memory_held).",
                ("{{node}}", f"system_memory_held{{{N}}}"),
            ),
            timeseries(
                "Transaction pool per node",
                "short",
                "Each node's own count of pending (executable) and queued (waiting for a nonce) transactions.",
                ("{{node}} pending", f"txpool_pending{{{N}}}"),
                ("{{node}} queued", f"txpool_queued{{{N}}}"),
            ),
            timeseries("Peers per node", "short", "Peers each node is connected to.", ("{{node}}", f"p2p_peers{{{N}}}")),
            timeseries("Chain head per node", "short", "Newest block each node has.", ("{{node}}", f"chain_head_block{{{N}}}")),
            timeseries(
                "Pool refusals and evictions per node",
                TX_S,
                "Transactions per second each node's pool discarded from pending or queued, or refused as underpriced.",
                ("{{node}} pending discarded", f"rate(txpool_pending_discard{{{N}}}[{RATE}])"),
                ("{{node}} queued discarded", f"rate(txpool_queued_discard{{{N}}}[{RATE}])"),
                ("{{node}} underpriced", f"rate(txpool_underpriced{{{N}}}[{RATE}])"),
            ),
        ],
    ),
    "loadgen-search": (
        "loadgen · search",
        [
            timeseries(
                "Pace under test",
                "s",
                "The trial's pace: seconds between a worker's two transactions. Each trial is a run: select several runs to compare.",
                ("{{run_id}}", f"loadgen_pace_seconds{{{R}}}"),
            ),
            timeseries("Trial", "short", "Number of the trial (search probe) the run is.", ("{{run_id}}", f"loadgen_trial{{{R}}}")),
            timeseries(
                "Commit ratio per trial",
                "percentunit",
                "Committed / final so far in each trial, against the threshold the search tests.",
                ("{{run_id}} commit ratio", f"loadgen_commit_ratio{{{R}}}"),
                ("{{run_id}} threshold", f"loadgen_threshold_ratio{{{R}}}"),
            ),
        ],
    ),
}

# The newest run first (by its start, as run ids need not sort by time), among the runs with data
# in the time range; with no "All" option and no saved selection, Grafana selects that first one.
RUN_VARIABLE = {
    "name": "run_id",
    "label": "run",
    "query": "query_result(sort_desc(max by (run_id) (max_over_time(loadgen_run_start_timestamp_seconds[$__range]))))",
    "regex": '/run_id="([^"]+)"/',
    "includeAll": False,
    "sort": 0,  # keep the query's order
}
NODE_VARIABLE = {
    "name": "node",
    "label": "node",
    "query": 'label_values(chain_head_block{job="loadgen-nodes"}, node)',
    "regex": "",
    "includeAll": True,
    "sort": 2,
}

# Regions over the time axis of every run panel. A region is the samples above 0 that lie at most
# `step` apart: the queries take the max over each step so that a phase shorter than a step shows.
ANNOTATION_STEP = "10s"
ANNOTATIONS = [
    ("Run", "blue", f"max_over_time(loadgen_run_info{{{R}}}[$__interval])", "run {{run_id}}", "{{name}} · {{workload}}"),
    ("Phases", "purple", f"max_over_time(loadgen_phase{{{R}}}[$__interval])", "{{phase}} · epoch {{epoch}}", "run {{run_id}}"),
]


def annotation(name: str, colour: str, expr: str, title: str, text: str) -> Json:
    return {
        "name": name,
        "datasource": PROMETHEUS,
        "enable": True,
        "iconColor": colour,
        "expr": expr,
        "step": ANNOTATION_STEP,
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": "run_id,phase",
        "useValueForTime": False,
    }


def layout(panels: list[Json]) -> list[Json]:
    """Numbers the panels and flows them left to right: stats 4 wide, tables 24, the rest 12."""
    width = {"stat": 4, "table": 24}
    height = {"stat": 4}
    x = y = row_h = 0
    placed = []
    for i, p in enumerate(panels):
        w, h = width.get(p["type"], 12), height.get(p["type"], 8)
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        placed.append({"id": i + 1, "datasource": PROMETHEUS, "gridPos": {"h": h, "w": w, "x": x, "y": y}} | p)
        x, row_h = x + w, max(row_h, h)
    return placed


def dashboard(uid: str, title: str, panels: list[Json]) -> Json:
    variable = NODE_VARIABLE if uid == "loadgen-nodes" else RUN_VARIABLE
    name = variable["name"]
    return {
        "uid": uid,
        "title": title,
        "tags": ["loadgen"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "annotations": {"list": [] if variable is NODE_VARIABLE else [annotation(*a) for a in ANNOTATIONS]},
        "templating": {
            "list": [
                {
                    "name": name,
                    "label": variable["label"],
                    "type": "query",
                    "datasource": PROMETHEUS,
                    "query": {"query": variable["query"], "refId": name},
                    "definition": variable["query"],
                    "regex": variable["regex"],
                    "refresh": 2,  # on load and on every time range change
                    "includeAll": variable["includeAll"],
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"} if variable["includeAll"] else {},
                    "sort": variable["sort"],
                }
            ]
        },
        "links": [{"type": "dashboards", "tags": ["loadgen"], "asDropdown": True, "title": "loadgen"}],
        "panels": layout(panels),
    }


def render() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n" for uid, (title, panels) in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / "dashboards" / name).write_text(text)
        print(f"grafana/dashboards/{name}")

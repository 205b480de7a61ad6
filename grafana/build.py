"""Writes grafana/dashboards/*.json from the panel lists below (run: python grafana/build.py).

One place defines every panel's PromQL, so the dashboards stay consistent and a test can run
every query against a real Prometheus. Every query is filtered by the `run_id` variable.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = 'run_id=~"$run_id"'
RATE = "$__rate_interval"
N = 'job="loadgen-nodes",node=~"$node"'


def q(quantile: float, metric: str, by: str = "le") -> str:
    return f"histogram_quantile({quantile}, sum by ({by}) (rate({metric}_bucket{{{R}}}[{RATE}])))"


# dashboard uid → (title, [(panel title, unit, [(legend, expr)])])
DASHBOARDS: dict[str, tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = {
    "loadgen-overview": (
        "loadgen · overview",
        [
            (
                "Scheduled vs committed rate",
                "reqps",
                [
                    ("scheduled", f'sum(rate(loadgen_transactions_total{{{R},outcome="scheduled"}}[{RATE}]))'),
                    ("committed", f'sum(rate(loadgen_transactions_total{{{R},outcome="committed"}}[{RATE}]))'),
                ],
            ),
            (
                "Commit ratio against the threshold",
                "percentunit",
                [
                    ("commit ratio", f"loadgen_commit_ratio{{{R}}}"),
                    ("threshold", f"loadgen_threshold_ratio{{{R}}}"),
                ],
            ),
            (
                "Inclusion latency",
                "s",
                [
                    ("p50", q(0.5, "loadgen_inclusion_latency_seconds")),
                    ("p95", q(0.95, "loadgen_inclusion_latency_seconds")),
                    ("p99", q(0.99, "loadgen_inclusion_latency_seconds")),
                ],
            ),
            ("In flight", "short", [("in flight", f"loadgen_in_flight_transactions{{{R}}}")]),
            ("Outcomes", "short", [("{{outcome}}", f"sum by (outcome) (loadgen_transactions_total{{{R}}})")]),
        ],
    ),
    "loadgen-endpoints": (
        "loadgen · endpoints",
        [
            (
                "Committed rate by endpoint",
                "reqps",
                [
                    ("{{endpoint}}", f'sum by (endpoint) (rate(loadgen_transactions_total{{{R},outcome="committed"}}[{RATE}]))'),
                ],
            ),
            (
                "Sent rate by endpoint",
                "reqps",
                [
                    ("{{endpoint}}", f'sum by (endpoint) (rate(loadgen_transactions_total{{{R},outcome="sent"}}[{RATE}]))'),
                ],
            ),
            (
                "Refused sends by endpoint and kind",
                "reqps",
                [
                    ("{{endpoint}} {{kind}}", f"sum by (endpoint, kind) (rate(loadgen_rpc_errors_total{{{R}}}[{RATE}]))"),
                ],
            ),
            ("Transaction pools", "short", [("{{endpoint}} {{state}}", f"loadgen_txpool_transactions{{{R}}}")]),
            # 0 from when a sender or a watcher found it down (run.failover_after bad answers) until it answers again
            ("Endpoint up (1) or down (0)", "short", [("{{endpoint}}", f"loadgen_endpoint_up{{{R}}}")]),
        ],
    ),
    "loadgen-chain": (
        "loadgen · chain",
        [
            ("Head block", "short", [("head", f"loadgen_chain_head_block{{{R}}}")]),
            ("Block interval", "s", [("interval", f"loadgen_block_interval_seconds{{{R}}}")]),
            ("Transactions per block", "short", [("transactions", f"loadgen_block_transactions{{{R}}}")]),
            (
                "Block fullness (gas used / gas limit)",
                "percentunit",
                [
                    ("fullness", f"loadgen_block_gas_used{{{R}}} / loadgen_block_gas_limit{{{R}}}"),
                ],
            ),
            ("Chain throughput", "reqps", [("tx/s", f"rate(loadgen_chain_transactions_total{{{R}}}[{RATE}])")]),
            ("Gas per second", "short", [("gas/s", f"rate(loadgen_chain_gas_used_total{{{R}}}[{RATE}])")]),
            ("Transaction pools", "short", [("{{endpoint}} {{state}}", f"loadgen_txpool_transactions{{{R}}}")]),
        ],
    ),
    "loadgen-generator": (
        "loadgen · generator health",
        [
            (
                "Schedule lag",
                "s",
                [
                    ("p50", q(0.5, "loadgen_schedule_lag_seconds")),
                    ("p99", q(0.99, "loadgen_schedule_lag_seconds")),
                ],
            ),
            (
                # above the pace, a client that waits for answers would fall behind; loadgen does not (open model)
                "Node answer time (eth_sendRawTransaction) against the pace",
                "s",
                [
                    ("p50", q(0.5, "loadgen_node_answer_seconds")),
                    ("p99", q(0.99, "loadgen_node_answer_seconds")),
                    ("pace", f"loadgen_pace_seconds{{{R}}}"),
                ],
            ),
            ("Refused sends", "reqps", [("{{kind}}", f"sum by (kind) (rate(loadgen_rpc_errors_total{{{R}}}[{RATE}]))")]),
            ("Nonce gaps recovered", "short", [("gaps", f"loadgen_nonce_gaps_recovered_total{{{R}}}")]),
            ("Failovers (a worker moved off a down endpoint)", "short", [("failovers", f"loadgen_failovers_total{{{R}}}")]),
            ("In flight", "short", [("in flight", f"loadgen_in_flight_transactions{{{R}}}")]),
        ],
    ),
    # The chain's own nodes (geth, GoQuorum), scraped from their --metrics ports: not per run.
    "loadgen-nodes": (
        "loadgen · nodes",
        [
            ("CPU per node (% of one core)", "percent", [("{{node}}", f"system_cpu_procload{{{N}}}")]),
            ("Memory per node (Go heap held)", "bytes", [("{{node}}", f"system_memory_held{{{N}}}")]),
            (
                "Transaction pool per node",
                "short",
                [("{{node}} pending", f"txpool_pending{{{N}}}"), ("{{node}} queued", f"txpool_queued{{{N}}}")],
            ),
            ("Peers per node", "short", [("{{node}}", f"p2p_peers{{{N}}}")]),
            ("Chain head per node", "short", [("{{node}}", f"chain_head_block{{{N}}}")]),
            (
                "Pool refusals and evictions per node",
                "reqps",
                [
                    ("{{node}} pending discarded", f"rate(txpool_pending_discard{{{N}}}[{RATE}])"),
                    ("{{node}} queued discarded", f"rate(txpool_queued_discard{{{N}}}[{RATE}])"),
                    ("{{node}} underpriced", f"rate(txpool_underpriced{{{N}}}[{RATE}])"),
                ],
            ),
        ],
    ),
    "loadgen-search": (
        "loadgen · search",
        [
            ("Pace under test", "s", [("pace", f"loadgen_pace_seconds{{{R}}}")]),
            ("Trial", "short", [("trial", f"loadgen_trial{{{R}}}")]),
            (
                "Commit ratio per trial",
                "percentunit",
                [
                    ("commit ratio", f"loadgen_commit_ratio{{{R}}}"),
                    ("threshold", f"loadgen_threshold_ratio{{{R}}}"),
                ],
            ),
        ],
    ),
}


def panel(i: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict:
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "loadgen-prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {
                "refId": chr(ord("A") + k),
                "expr": expr,
                "legendFormat": legend,
                "datasource": {"type": "prometheus", "uid": "loadgen-prometheus"},
            }
            for k, (legend, expr) in enumerate(targets)
        ],
    }


# The variable a dashboard's queries filter by: the run, except for the nodes, which outlive runs.
VARIABLES = {"loadgen-nodes": ("node", "node", 'label_values(chain_head_block{job="loadgen-nodes"}, node)')}
RUN_VARIABLE = ("run_id", "run", "label_values(loadgen_run_info, run_id)")


def dashboard(uid: str, title: str, panels: list) -> dict:
    name, label, query = VARIABLES.get(uid, RUN_VARIABLE)
    return {
        "uid": uid,
        "title": title,
        "tags": ["loadgen"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": name,
                    "label": label,
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "loadgen-prometheus"},
                    "query": {"query": query, "refId": name},
                    "definition": query,
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 2,
                }
            ]
        },
        "links": [{"type": "dashboards", "tags": ["loadgen"], "asDropdown": True, "title": "loadgen"}],
        "panels": [panel(i, *p) for i, p in enumerate(panels)],
    }


def render() -> dict[str, str]:
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n" for uid, (title, panels) in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / "dashboards" / name).write_text(text)
        print(f"grafana/dashboards/{name}")

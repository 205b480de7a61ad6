"""Several runs side by side: every summary row with each run's change from the first (the
baseline), the configuration keys whose values differ, and the runs' rates and latencies over
time on one clock (seconds from each run's first scheduled transaction). Pure but for the
figure, which plots.py-style code draws from these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.report.run_report import RunReport
from loadgen.report.summary import SUMMARY_ROWS, metric_rows, verdict

# rows whose change is a difference in points, not a share of the baseline's value
POINTS = {"commit_ratio"}


def letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else str(i + 1)


def change(key: str, base: float | None, value: float | None) -> str:
    """The run's value against the baseline's: +12.3% (or +3.1 pt for a ratio); "–" where either
    has none or the baseline is 0."""
    if base is None or value is None:
        return "–"
    if key in POINTS:
        return f"{(value - base) * 100:+.1f} pt"
    if base == 0:
        return "–" if value == 0 else "new"
    return f"{(value - base) / abs(base):+.1%}"


@dataclass(frozen=True)
class Comparison:
    reports: list[RunReport]

    @property
    def names(self) -> list[str]:
        return [r.run_id for r in self.reports]

    def rows(self) -> list[tuple[str, list[str], list[str]]]:
        """Per summary row: its label, each run's value, and each later run's change from A."""
        summaries = [r.summary for r in self.reports]
        values = [dict(metric_rows(s)) for s in summaries]
        rows = []
        for label, key, _ in SUMMARY_ROWS:
            base = summaries[0].get(key)
            changes = [change(key, base, s.get(key)) for s in summaries[1:]]
            rows.append((label, [v.get(label, "–") for v in values], changes))
        rows.append(("verdict", [verdict(s) for s in summaries], [""] * (len(summaries) - 1)))
        return rows

    def config_differences(self) -> list[tuple[str, list[str]]]:
        """The configuration keys set differently in at least two runs, with each run's value."""
        configs = [dict(r.config) for r in self.reports]
        keys = list(dict.fromkeys(k for c in configs for k in c))
        return [(k, [c.get(k, "–") for c in configs]) for k in keys if len({c.get(k, "–") for c in configs}) > 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": {letter(i): name for i, name in enumerate(self.names)},
            "rows": [{"label": label, "values": values, "change_from_A": changes} for label, values, changes in self.rows()],
            "config_differences": {k: v for k, v in self.config_differences()},
        }

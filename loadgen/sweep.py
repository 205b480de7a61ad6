"""Sweeps: the study's figures from one command.

``fl-round``: one minimum-pace search per value of the varied parameter (Fig. 2 varies
``workload.redundancy``, Fig. 3 ``workload.model_length``), drawn as minimum pace against the
value beside the study's own numbers. ``array-copy``: ``repeats`` runs per value of
``workload.array_size`` (Fig. 1), drawn twice: the share committed as loadgen counts it, and
as the study's tool counted it (reverted transactions included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import config as config_mod
from loadgen.config import ArrayCopy, Experiment
from loadgen.errors import UserError
from loadgen.run import Run, ray_session, shared_chain
from loadgen.search import KEYS_PER_TRIAL, Search, trial_key_offset

# a search rarely runs more than a few dozen trials: its keys stay in a range of their own
KEYS_PER_SEARCH = 100 * KEYS_PER_TRIAL

# The study's minimum paces at ≥ 85% committed (its Fig. 2 and Fig. 3), for the figures.
STUDY = {
    "workload.redundancy": {1: 0.05, 2: 0.1, 4: 0.1, 8: 0.25, 16: 1.0},
    "workload.model_length": {50_000: 1.0, 100_000: 0.5, 250_000: 0.25, 500_000: 0.25, 1_000_000: 0.25, 2_500_000: 0.25, 5_000_000: 0.5},
}


def parse_vary(text: str) -> tuple[str, list[float | int]]:
    key, sep, raw = text.partition("=")
    values: list[float | int] = []
    try:
        for v in raw.split(","):
            number = float(v)
            values.append(int(number) if number.is_integer() else number)
    except ValueError:
        values = []
    if not sep or not key.startswith("workload.") or not values:
        raise UserError(f"--vary {text!r}: write workload.KEY=V1,V2,…, e.g. workload.redundancy=1,2,4,8,16")
    return key, values


@dataclass
class Sweep:
    experiment: Experiment
    out: Path
    param: str
    values: list[float | int]
    search_options: dict[str, Any]
    run_options: dict[str, Any]
    on_event: Any = None
    ray_address: str | None = None

    def execute(self) -> dict[str, Any]:
        event = self.on_event or (lambda m: None)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "sweep.json"
        state: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        state |= {"vary": self.param, "values": self.values, "kind": self.experiment.workload.kind}
        try:
            with ray_session(self.ray_address), shared_chain(self.experiment) as (experiment, mnemonic):
                if isinstance(experiment.workload, ArrayCopy):
                    self._array_copy(experiment, mnemonic, state, path, event)
                else:
                    self._searches(experiment, mnemonic, state, path, event)
        finally:
            path.write_text(json.dumps(state, indent=2) + "\n")
        state["figures"] = self._figures(state)
        path.write_text(json.dumps(state, indent=2) + "\n")
        return state

    def _searches(self, experiment: Experiment, mnemonic, state: dict, path: Path, event) -> None:
        searches = {s["value"]: s for s in state.get("searches", [])}
        for n, value in enumerate(self.values):
            folder = self.out / f"{self.param.rsplit('.', 1)[-1]}-{value}"
            # each search's trials take their keys from a range of their own (see trial_key_offset)
            keys = experiment.run.key_offset + n * KEYS_PER_SEARCH
            varied = config_mod.from_dict(config_mod.to_public_dict(experiment), {self.param: value, "run.key_offset": keys})
            event(f"{self.param}={value}: searching")
            result = Search(
                varied, folder, on_event=event, run_options=self.run_options, mnemonic=mnemonic, **self.search_options
            ).execute()
            searches[value] = {"value": value, "min_pace_s": result.min_value, "status": result.status, "folder": str(folder)}
            state["searches"] = [searches[v] for v in self.values if v in searches]
            path.write_text(json.dumps(state, indent=2) + "\n")

    def _array_copy(self, experiment: Experiment, mnemonic, state: dict, path: Path, event) -> None:
        repeats = self.search_options.get("repeats", 1)
        points = {(p["value"], p["repeat"]): p for p in state.get("points", [])}
        for n, value in enumerate(self.values):
            for repeat in range(repeats):
                if (value, repeat) in points:
                    continue
                keys = trial_key_offset(experiment, n * repeats + repeat)
                varied = config_mod.from_dict(config_mod.to_public_dict(experiment), {self.param: value, "run.key_offset": keys})
                run = Run(
                    varied,
                    self.out / "runs",
                    run_id=f"{self.param.rsplit('.', 1)[-1]}-{value}-r{repeat}",
                    trial=repeat,
                    mnemonic=mnemonic,
                    **self.run_options,
                )
                s = run.execute().summary
                n = s["submitted"] or 1
                points[(value, repeat)] = {
                    "value": value, "repeat": repeat, "submitted": s["submitted"],
                    "committed_pct": 100 * s["committed"] / n,
                    "committed_or_reverted_pct": 100 * (s["committed"] + s["reverted"]) / n,
                    "run_dir": str(run.dir),
                }  # fmt: skip
                event(f"{self.param}={value} #{repeat}: {points[(value, repeat)]['committed_pct']:.0f}% committed, "
                      f"{points[(value, repeat)]['committed_or_reverted_pct']:.0f}% counting reverted")  # fmt: skip
                state["points"] = sorted(points.values(), key=lambda p: (p["value"], p["repeat"]))
                path.write_text(json.dumps(state, indent=2) + "\n")

    def _figures(self, state: dict) -> list[str]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        name = self.param.rsplit(".", 1)[-1]
        if state["kind"] == "array-copy":
            fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
            for ax, key, title in (
                (axes[0], "committed_pct", "committed (loadgen: success receipts only)"),
                (axes[1], "committed_or_reverted_pct", "committed as the study's tool counted (reverted included)"),
            ):
                pts = state.get("points", [])
                xs = sorted({p["value"] for p in pts})
                for p in pts:
                    ax.scatter(p["value"], p[key], color="#264653", s=12)
                means = [sum(p[key] for p in pts if p["value"] == x) / max(1, sum(1 for p in pts if p["value"] == x)) for x in xs]
                ax.plot(xs, means, color="#2a9d8f")
                ax.set(xlabel=name, title=title, ylim=(0, 105))
            axes[0].set_ylabel("% of transactions")
            fig.tight_layout()
            out = self.out / "fig1-transaction-size.png"
            fig.savefig(out, dpi=110)
            plt.close(fig)
            return [str(out)]
        found = [(s["value"], s["min_pace_s"]) for s in state.get("searches", []) if s["min_pace_s"] is not None]
        at_most = [(s["value"], s["min_pace_s"]) for s in state.get("searches", []) if s["status"] == "lo-passes"]
        fig, ax = plt.subplots(figsize=(7, 4))
        if found:
            ax.plot(*zip(*found, strict=True), marker="o", color="#2a9d8f", label="loadgen (this chain)")
        if at_most:  # lo already passed: the minimum is at most this
            ax.scatter(*zip(*at_most, strict=True), marker="v", s=80, color="#2a9d8f", zorder=3, label="at most (lo passed)")
        study = STUDY.get(self.param)
        if study:
            ax.plot(list(study), list(study.values()), marker="s", ls="--", color="#adb5bd", label="the study (8 GoQuorum nodes)")
        if self.param == "workload.model_length":
            ax.set_xscale("log")
        ax.set(
            xlabel=name, ylabel="minimum pace (s)", title=f"Minimum pace for ≥ {self.search_options.get('threshold') or 0.85:.0%} committed"
        )
        ax.legend()
        fig.tight_layout()
        figure = {"workload.redundancy": "fig2-redundancy", "workload.model_length": "fig3-model-length"}.get(
            self.param, f"min-pace-{name}"
        )
        out = self.out / f"{figure}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return [str(out)]

"""Sweeps: the study's figures from one command.

The workload says what a sweep means (``Workload.sweep``): a minimum-pace search per value of
the varied parameter (``fl-round``: Fig. 2 varies ``workload.redundancy``, Fig. 3
``workload.model_length``), drawn as minimum pace against the value beside the workload's
published reference points; or ``repeats`` runs per value (``array-copy``'s Fig. 1 varies
``workload.array_size``), drawn twice: the share committed as loadgen counts it, and as the
study's tool counted it (reverted transactions included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.common.errors import UserError
from loadgen.common.jsonfile import read_json, write_json
from loadgen.config.schema import Experiment
from loadgen.engine.hosting import hosted, kind_for
from loadgen.engine.rig import Rig
from loadgen.engine.run import Run
from loadgen.engine.session import shared
from loadgen.study.search import KEYS_PER_TRIAL, Search, trial_key_offset

# a search rarely runs more than a few dozen trials: its keys stay in a range of their own
KEYS_PER_SEARCH = 100 * KEYS_PER_TRIAL


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
        state: dict[str, Any] = read_json(path) if path.is_file() else {}
        state |= {"vary": self.param, "values": self.values, "kind": self.experiment.workload.kind, "mode": self.experiment.plugin.sweep}
        try:
            kind = kind_for(self.experiment.run, self.ray_address, None)
            with (
                hosted(kind, self.ray_address) as host,
                shared(self.experiment, f"sweep-{os.getpid()}") as (experiment, mnemonic),
                Rig(host) as rig,
            ):
                if experiment.plugin.sweep == "search":
                    self._searches(experiment, mnemonic, rig, state, path, event)
                else:
                    self._repeats(experiment, mnemonic, rig, state, path, event)
        finally:
            write_json(path, state)
        state["figures"] = self._figures(state)
        write_json(path, state)
        return state

    def _searches(self, experiment: Experiment, mnemonic, rig: Rig, state: dict, path: Path, event) -> None:
        searches = {s["value"]: s for s in state.get("searches", [])}
        for n, value in enumerate(self.values):
            folder = self.out / f"{self.param.rsplit('.', 1)[-1]}-{value}"
            # each search's trials take their keys from a range of their own (see trial_key_offset)
            keys = experiment.run.key_offset + n * KEYS_PER_SEARCH
            varied = experiment.with_overrides({self.param: value, "run.key_offset": keys})
            event(f"{self.param}={value}: searching")
            result = Search(
                varied, folder, on_event=event, run_options=self.run_options, mnemonic=mnemonic, rig=rig, **self.search_options
            ).execute()
            searches[value] = {"value": value, "min_pace_s": result.min_value, "status": result.status, "folder": str(folder)}
            state["searches"] = [searches[v] for v in self.values if v in searches]
            write_json(path, state)

    def _repeats(self, experiment: Experiment, mnemonic, rig: Rig, state: dict, path: Path, event) -> None:
        repeats = self.search_options.get("repeats", 1)
        points = {(p["value"], p["repeat"]): p for p in state.get("points", [])}
        for n, value in enumerate(self.values):
            for repeat in range(repeats):
                if (value, repeat) in points:
                    continue
                keys = trial_key_offset(experiment, n * repeats + repeat)
                varied = experiment.with_overrides({self.param: value, "run.key_offset": keys})
                run = Run(
                    varied,
                    self.out / "runs",
                    run_id=f"{self.param.rsplit('.', 1)[-1]}-{value}-r{repeat}",
                    trial=repeat,
                    mnemonic=mnemonic,
                    rig=rig,
                    **self.run_options,
                )
                s = run.execute().summary
                n = s["scheduled"] or 1
                points[(value, repeat)] = {
                    "value": value, "repeat": repeat, "scheduled": s["scheduled"],
                    "committed_pct": 100 * s["committed"] / n,
                    "committed_or_reverted_pct": 100 * (s["committed"] + s["reverted"]) / n,
                    "run_dir": str(run.dir),
                }  # fmt: skip
                event(f"{self.param}={value} #{repeat}: {points[(value, repeat)]['committed_pct']:.0f}% committed, "
                      f"{points[(value, repeat)]['committed_or_reverted_pct']:.0f}% counting reverted")  # fmt: skip
                state["points"] = sorted(points.values(), key=lambda p: (p["value"], p["repeat"]))
                write_json(path, state)

    def _figures(self, state: dict) -> list[str]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        name = self.param.rsplit(".", 1)[-1]
        workload = self.experiment.plugin
        if workload.sweep == "repeats":
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
            out = self.out / f"{workload.figure_names.get(self.param, f'commit-{name}')}.png"
            fig.savefig(out, dpi=110)
            plt.close(fig)
            return [str(out)]
        found = [(s["value"], s["min_pace_s"]) for s in state.get("searches", []) if s["min_pace_s"] is not None]
        at_most = [(s["value"], s["min_pace_s"]) for s in state.get("searches", []) if s["status"] == "lo-passes"]
        fig, ax = plt.subplots(figsize=(7, 4))
        if found:
            ax.plot(*zip(*found, strict=True), marker="o", color="#2a9d8f", label="loadgen (this chain)")
        if at_most:  # lo already passed: the minimum is at most this
            values, paces = zip(*at_most, strict=True)
            ax.scatter(values, paces, marker="v", s=80, color="#2a9d8f", zorder=3, label="at most (lo passed)")
        study = workload.references.get(self.param)
        if study:
            ax.plot(list(study), list(study.values()), marker="s", ls="--", color="#adb5bd", label="the study (8 GoQuorum nodes)")
        if self.param == "workload.model_length":
            ax.set_xscale("log")
        ax.set(
            xlabel=name, ylabel="minimum pace (s)", title=f"Minimum pace for ≥ {self.search_options.get('threshold') or 0.85:.0%} committed"
        )
        ax.legend()
        fig.tight_layout()
        figure = workload.figure_names.get(self.param, f"min-pace-{name}")
        out = self.out / f"{figure}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return [str(out)]

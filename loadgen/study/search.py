"""The minimum pace: the smallest value of a parameter (by default ``workload.pace_s``) at which
at least ``threshold`` of the transactions commit.

Each probe is a trial: a fresh round on the chain, run to completion and drained (a Run; the
pools are empty before the next one starts). The search:

1. checks its brackets: ``hi`` must pass (else there is nothing to find below it), ``lo`` is
   expected to fail (if it passes, the answer is ≤ lo, and the search says so);
2. bisects, on a log scale while hi/lo ≥ 10 and linearly after, until (hi − lo)/hi ≤ tolerance;
3. checks its own assumption: bisection never probes above a pass, so once it has converged it
   probes a slower pace, halfway (geometrically) between the answer and ``hi``. A failure there
   contradicts monotonicity; it is tried again before it is believed, and if it keeps failing
   the search reports it (``status: non-monotone``) and searches again above that pace, so the
   answer is a pace from which every probe above passed.

Verdicts. With one trial per probe, a probe passes when its commit ratio reaches the threshold,
and is *undecided* when it holds too few transactions to see a failure rate of 1 − threshold
(fewer than 20 / (1 − threshold) rows). With ``repeats`` ≥ 2 the trials' transactions are
pooled and the probe passes when the lower end of the 95% Wilson interval of the commit ratio
reaches the threshold, fails when its upper end is below, and is undecided in between.
Undecided probes get one more trial; still undecided, they count as failures, so the answer
errs on the slow, safe side. A trial that can no longer reach the threshold (too many
failures already final) stops early and fails.

Everything lands in the search folder: ``search.json`` (updated after every trial, so an
interrupted search resumes without re-running finished trials), one run folder per trial, and
``search.png``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.common.errors import UserError
from loadgen.common.jsonfile import read_json, write_json
from loadgen.config import schema as config_mod
from loadgen.config.accounts import MnemonicSource
from loadgen.config.schema import Experiment
from loadgen.engine.hosting import hosted, kind_for
from loadgen.engine.progress import Progress
from loadgen.engine.rig import Rig
from loadgen.engine.run import Run
from loadgen.engine.session import shared
from loadgen.study.answer import too_small
from loadgen.study.bisection import Bisection, SearchState, Trial, can_still_pass, probes_left, verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KEYS_PER_TRIAL = 1_000


@dataclass(frozen=True)
class SearchProgress:
    """Where a search stands, for a live line: the trial under way and what is left."""

    elapsed_s: float
    trial: int
    param: str
    value: float
    bracket: tuple[float, float]
    probes_left: int
    eta_s: float | None  # from the trials' mean length so far; None before the first ends
    run: Progress | None  # the trial's own, while it runs


def trial_key_offset(experiment: Experiment, index: int) -> int:
    """Every trial of a series signs with keys no earlier trial used. A trial that overloads the
    nodes leaves transactions in their pools that may still land, or block a nonce, long after
    it ended; with the same keys the next trial would collide with them and measure them, not
    its pace."""
    workers = experiment.plugin.workers
    stride = KEYS_PER_TRIAL * -(-workers // KEYS_PER_TRIAL)
    return experiment.run.key_offset + index * stride


class Search:
    def __init__(
        self,
        experiment: Experiment,
        out_dir: Path,
        *,
        param: str | None = None,
        lo: float,
        hi: float,
        threshold: float | None = None,
        tolerance: float = 0.05,
        repeats: int = 1,
        on_event: Callable[[str], None] | None = None,
        on_progress: Callable[[SearchProgress], None] | None = None,
        run_options: dict[str, Any] | None = None,
        ray_address: str | None = None,
        mnemonic: MnemonicSource | None = None,
        rig: Rig | None = None,
    ) -> None:
        if not 0 < lo < hi:
            raise UserError(f"--lo {lo:g} and --hi {hi:g}: the search needs 0 < lo < hi")
        if not 0 < tolerance < 1:
            raise UserError(f"--tolerance {tolerance:g}: a fraction between 0 and 1, e.g. 0.05 for 5%")
        if repeats < 1:
            raise UserError("--repeats must be at least 1")
        param = param or experiment.plugin.search_param
        if param is None:
            raise UserError(f"a {experiment.workload.kind} workload has no parameter to minimise by default: pass --param workload.KEY")
        self.experiment = experiment
        self.dir = out_dir
        self.on_event = on_event or (lambda m: None)
        self.on_progress = on_progress or (lambda p: None)
        self._started = time.monotonic()
        self.run_options = run_options or {}
        self.rig = rig  # a sweep's; else the search brings its own
        self.ray_address = ray_address or os.environ.get("RAY_ADDRESS")
        threshold = experiment.run.threshold if threshold is None else threshold
        self.state = self._resume() or SearchState(
            param, lo, hi, threshold, tolerance, repeats, config_mod.to_public_dict(experiment), bracket=[lo, hi]
        )
        self._mnemonic = mnemonic
        self._endpoints: list[str] | None = None

    # persistence -------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.dir / "search.json"

    def _resume(self) -> SearchState | None:
        if not self.path.is_file():
            return None
        state = SearchState.from_json(read_json(self.path))
        if state.config != config_mod.to_public_dict(self.experiment):
            raise UserError(f"{self.path} belongs to a search of another configuration: choose another --out")
        self.on_event(f"resuming {self.path}: {len(state.trials)} trial(s) already done")
        return state

    def _save(self) -> None:
        write_json(self.path, self.state.to_json())

    # trials --------------------------------------------------------------------------------
    def _trial(self, value: float, repeat: int) -> Trial:
        for t in self.state.trials:
            if t.value == value and t.repeat == repeat:
                return t
        index = len(self.state.trials)
        overrides: dict[str, Any] = {self.state.param: value, "run.key_offset": trial_key_offset(self.experiment, index)}
        if self._endpoints is not None:
            overrides["chain.endpoints"] = self._endpoints
        experiment = self.experiment.with_overrides(overrides)
        run_id = f"trial-{index:03d}-{self.state.param.rsplit('.', 1)[-1]}-{value:g}-r{repeat}"
        began = time.monotonic()
        self._report(index, value, None)
        run_dir, s = self.run_trial(experiment, run_id, index, lambda p: self._report(index, value, p))
        # committed in time, as the commit ratio counts: a late inclusion is on the chain but did
        # not keep the pace (the study's tool counted only what landed within its timeout)
        in_time = s["committed"] - s.get("committed_late", 0)
        single, _, _ = verdict(in_time, s["scheduled"], self.state.threshold, 1)
        invalid = s.get("invalid") or {}
        why = "; ".join(invalid.get("reasons", ())) or None
        trial = Trial(
            value, repeat, run_id, str(run_dir), s["scheduled"], in_time, s["commit_ratio"],
            s["latency_p50_s"], s["latency_p95_s"], s["latency_p99_s"], s.get("stopped_early"),
            "fail" if s.get("stopped_early") or invalid else single,
            why if invalid.get("cause") == "generator" else None, why if invalid.get("cause") == "node" else None,
            time.monotonic() - began,
        )  # fmt: skip
        self.state.trials.append(trial)
        self._save()
        early = f", stopped early: {trial.stopped_early}" if trial.stopped_early else ""
        self.on_event(f"trial {index}: {self.state.param}={value:g} → commit ratio {trial.commit_ratio:.1%} of {trial.scheduled}{early}")
        return trial

    def _report(self, index: int, value: float, run: Progress | None) -> None:
        walls = [t.wall_s for t in self.state.trials if t.wall_s > 0]
        left = probes_left(self.state)
        eta = left * self.state.repeats * sum(walls) / len(walls) if walls else None
        lo, hi = self.state.bracket
        self.on_progress(SearchProgress(time.monotonic() - self._started, index, self.state.param, value, (lo, hi), left, eta, run))

    def run_trial(
        self, experiment: Experiment, run_id: str, index: int, on_progress: Callable[[Progress], None] | None = None
    ) -> tuple[Path, dict[str, Any]]:
        """One fresh round on the chain, run to completion and drained: its folder and summary."""
        threshold = self.state.threshold

        def hopeless(p: Progress) -> str | None:
            return None if can_still_pass(p, p.planned, p.fixed_slots, threshold) else f"can no longer reach {threshold:.0%}"

        if self.rig is not None:  # the next trial's keys, whatever its value: its round opens ahead
            self.rig.next_key_offset = trial_key_offset(self.experiment, index + 1)
        run = Run(
            experiment, self.dir / "trials", run_id=run_id, trial=index, mnemonic=self._mnemonic,
            should_stop=hopeless, on_event=lambda m: None, on_progress=on_progress, rig=self.rig, **self.run_options,
        )  # fmt: skip
        result = run.execute()
        if result.interrupted:
            raise KeyboardInterrupt
        return result.run_dir, result.summary

    @contextlib.contextmanager
    def environment(self) -> Iterator[tuple[Experiment, MnemonicSource | None]]:
        """The chain, the actors' host (Ray, or this process) and the rig (actors, contracts) for
        every trial: one of each for the whole search, or the sweep's."""
        with contextlib.ExitStack() as stack:
            pinned = stack.enter_context(shared(self.experiment, f"search-{os.getpid()}"))
            if self.rig is None:
                host = stack.enter_context(hosted(kind_for(self.experiment.run, self.ray_address, None), self.ray_address))
                self.rig = stack.enter_context(Rig(host))
                stack.callback(setattr, self, "rig", None)
            yield pinned

    # the search ------------------------------------------------------------------------------
    def execute(self) -> SearchState:
        self.state.status = "running"
        self._save()
        planned = self.experiment.plan(["<endpoint>"], 1).transactions
        small = too_small(planned, self.state.threshold, self.state.repeats)
        if small:
            self.state.notes.append(small)
            self.on_event(f"warning: {small}")
        try:
            with self.environment() as (experiment, mnemonic):
                if experiment is not self.experiment:
                    self._endpoints = list(experiment.chain.endpoints)
                    self._mnemonic = mnemonic
                    self.on_event(f"embedded devnet for the whole search at {self._endpoints[0]}")
                Bisection(self.state, self._trial, self._save, self.on_event).search()
        except KeyboardInterrupt:  # any signal (engine/signals.py): the folder says where it stopped
            self.state.status = "interrupted"
            raise
        except BaseException:
            self.state.status = "failed"
            raise
        finally:
            self._save()
            self._plot()
        return self.state

    def _plot(self) -> None:
        if not self.state.trials:
            return
        import matplotlib.pyplot as plt

        fig = figure(self.state)
        fig.savefig(self.dir / "search.png", dpi=110)
        plt.close(fig)


def figure(state: SearchState) -> Figure:
    """search.png: every trial, every probe with its 95% interval, the threshold, the bracket
    and the answer, each in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [t.value for t in state.trials]
    ax.scatter(xs, [t.commit_ratio for t in state.trials], color="#264653", s=14, label="one trial", zorder=3)
    marks = {
        "pass": ("o", "#2a9d8f", "probe passed"),
        "fail": ("x", "#e63946", "probe failed"),
        "undecided": ("D", "#f4a261", "undecided (counted as failed)"),
    }
    for kind, (marker, color, label) in marks.items():
        probes = [p for p in state.probes if ("undecided" if p.undecided else p.verdict) == kind]
        if not probes:
            continue
        ys = [p.commit_ratio for p in probes]
        below = [max(0.0, y - p.lower) for y, p in zip(ys, probes, strict=True)]
        above = [max(0.0, p.upper - y) for y, p in zip(ys, probes, strict=True)]
        ax.errorbar([p.value for p in probes], ys, yerr=[below, above], fmt=marker, color=color, ms=9, capsize=4,
                    label=f"{label}, 95% interval", zorder=4)  # fmt: skip
    ax.axhline(state.threshold, ls="--", color="#e63946", label=f"threshold {state.threshold:.0%}")
    if state.status in ("done", "non-monotone", "interrupted", "running"):
        ax.axvspan(*state.bracket, color="#2a9d8f", alpha=0.1, label=f"bracket {state.bracket[0]:g} … {state.bracket[1]:g}")
    if state.min_value is not None:
        ax.axvline(state.min_value, ls=":", color="#2a9d8f", label=f"minimum {state.min_value:g}")
    if max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    ax.set(xlabel=state.param, ylabel="commit ratio", ylim=(0, 1.05), title="Commit ratio against " + state.param)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig

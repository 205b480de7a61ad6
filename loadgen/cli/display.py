"""The live display of `loadgen run`.

On a terminal: the events as lines, and below them a block redrawn in place four times a
second (so a step that takes a while still shows the clock moving): what the run is doing,
a bar of the whole run's planned transactions with elapsed time and ETA, the counts, and the
rate and latency of the last few seconds. Elsewhere (a CI log, a pipe): the events and a plain
progress line every few seconds, each on one line whatever its length.

Every line is made of whole fields: a label is never parted from its value, a value or a path
is never cut. The counts use the vocabulary of summary.json: planned, scheduled, sent,
committed, reverted, rejected, dropped, unsent.
"""

from __future__ import annotations

import textwrap
import time

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from loadgen.engine.progress import Progress

PLAIN_EVERY_S = 5.0
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
OUTCOMES = ("committed", "reverted", "rejected", "dropped", "unsent")


def clock(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    minutes, s = divmod(round(max(seconds, 0.0)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02}:{s:02}" if hours else f"{m}:{s:02}"


def fit(fields: list[str], width: int) -> list[str]:
    """The fields two spaces apart, on as few lines of ``width`` cells as they fill; a field is
    never split (one wider than ``width`` has a line of its own)."""
    lines: list[str] = []
    for f in fields:
        if lines and cell_len(lines[-1]) + 2 + cell_len(f) <= width:
            lines[-1] += "  " + f
        else:
            lines.append(f)
    return lines


def where(p: Progress) -> str:
    """The phase, and the epoch when there are several (numbered from 0, as in summary.json)."""
    return p.phase if p.epochs == 1 else f"epoch {p.epoch} {p.phase}"


def doing(p: Progress) -> str:
    inflight = p.stats.inflight
    if p.phase_left_s > 0:
        return f"{where(p)}: sending"
    return f"{where(p)}: draining {inflight:,} in flight…" if inflight else f"{where(p)}: all scheduled, none in flight"


def eta(p: Progress) -> str | None:
    """What the schedule has left, plus the time the last transaction then takes to be included
    (the recent p95); none once everything is sent."""
    if p.run_left_s <= 0:
        return None
    return f"ETA ~{clock(p.run_left_s + (p.latency_p95_s or 0.0))}"


def share(p: Progress) -> str:
    percent = 100 * p.done // p.planned if p.planned else 100
    return f"{percent}% ({p.done:,}/{p.planned:,} done)"


def counts(p: Progress) -> list[str]:
    s = p.stats
    return [
        f"planned {p.planned:,}",
        f"scheduled {s.scheduled:,}",
        f"sent {s.sent:,}",
        f"in flight {s.inflight:,}",
    ]


def outcomes(p: Progress) -> list[str]:
    return [f"{k} {getattr(p.stats, k):,}" for k in OUTCOMES]


def rates(p: Progress) -> list[str]:
    latency = "–" if p.latency_p95_s is None else f"{p.latency_p95_s:.2f} s"
    return [
        f"now {p.tx_per_s:.1f} tx/s",
        f"p95 latency {latency}",
        f"schedule lag {p.stats.max_lag_s:.3f} s",
        f"watcher lag {p.watcher_lag.seconds:.1f} s",
    ]


def warnings(p: Progress) -> list[str]:
    said = []
    if p.lagging:
        said.append(f"GENERATOR LAGGING {p.stats.max_lag_s:.2f} s behind schedule")
    if p.watcher_lag.seconds > WATCHER_BEHIND_S:
        said.append(f"WATCHER {p.watcher_lag.blocks} blocks ({p.watcher_lag.seconds:.1f} s) behind the chain")
    if p.slow_answers:
        said.append(f"node answers in {p.stats.max_answer_s:.2f} s > pace {p.interval_s:g} s")
    return said


WATCHER_BEHIND_S = 5.0  # the watcher reading this far behind the chain is said aloud: inclusions show late


def bar(fraction: float, width: int) -> str:
    full = round(min(max(fraction, 0.0), 1.0) * width)
    return "━" * full + "╌" * (width - full)


def block(p: Progress | None, activity: str, elapsed_s: float, width: int, spin: str = SPINNER[0]) -> list[Text]:
    """The terminal's live block: no line wider than ``width`` cells, whatever the counts."""
    lines = [Text(line) for line in textwrap.wrap(f"{spin} {clock(elapsed_s)}  {activity}", width, break_on_hyphens=False)]
    if p is None:
        return lines
    ahead = [share(p)] + ([left] if (left := eta(p)) else [])
    room = width - cell_len("  ".join(ahead)) - 2
    if room >= 10:
        lines.append(Text(bar(p.done / p.planned if p.planned else 1.0, room) + "  " + "  ".join(ahead)))
    else:  # too narrow for a bar worth the name
        lines += [Text(line) for line in fit(ahead, width)]
    for group in (counts(p), outcomes(p), rates(p)):
        lines += [Text(line) for line in fit(group, width)]
    lines += [Text(line, style="bold red") for line in fit(warnings(p), width)]
    return lines


def plain(p: Progress, elapsed_s: float) -> str:
    """The line a log gets every few seconds: one line, however long, never cut."""
    head = [where(p), share(p)] + ([left] if (left := eta(p)) else [])
    groups = [head, counts(p), outcomes(p), rates(p), warnings(p)]
    return f"[{clock(elapsed_s)}] " + " | ".join(", ".join(g) for g in groups if g)


class _Block:
    """Rendered at every refresh, so the clock moves while nothing else does."""

    def __init__(self, display: Display) -> None:
        self.display = display

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        d = self.display
        spin = SPINNER[int(time.monotonic() * 10) % len(SPINNER)]
        yield from block(d.last, d.activity, d.elapsed_s, options.max_width, spin)


class Display:
    """Live progress on a terminal; a plain line every few seconds elsewhere (logs, CI)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.last: Progress | None = None
        self.activity = "starting…"
        self._printed_at = -PLAIN_EVERY_S
        self._printed_where = ""
        self._unprinted: tuple[Progress, float] | None = None  # the last snapshot a log has not had, and when
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(_Block(self), console=console, refresh_per_second=4, transient=True)
            self.live.start()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def event(self, message: str) -> None:
        """A line that stays: on a terminal wrapped between words to its width (a URL or a path
        longer than that stays whole: the terminal wraps it, and it copies as one), elsewhere
        one line."""
        self.activity = message
        if self._unprinted is not None:  # a log shows where things stood before what happens next
            self._print(*self._unprinted)
        lines = [message]
        if self.live is not None:
            lines = textwrap.wrap(message, max(self.console.width - 2, 20), break_long_words=False, break_on_hyphens=False) or lines
        for i, line in enumerate(lines):
            self.console.print(Text.assemble(("· " if i == 0 else "  ", "dim"), line), soft_wrap=True)

    def progress(self, p: Progress) -> None:
        self.last = p
        self.activity = doing(p)
        if self.live is not None:
            return
        # a log gets a line every few seconds, at each new phase, and whenever the generator lags
        elapsed = self.elapsed_s
        if where(p) != self._printed_where and self._unprinted is not None:  # the last phase's last numbers first
            self._print(*self._unprinted)
        if elapsed - self._printed_at >= PLAIN_EVERY_S or where(p) != self._printed_where or p.lagging:
            self._print(p, elapsed)
        else:
            self._unprinted = (p, elapsed)

    def _print(self, p: Progress, elapsed_s: float) -> None:
        self._printed_at, self._printed_where, self._unprinted = elapsed_s, where(p), None
        self.console.print(plain(p, elapsed_s), soft_wrap=True, markup=False, highlight=False)

    def stop(self) -> None:
        if self.live is not None and self.live.is_started:
            self.live.stop()

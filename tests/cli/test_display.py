"""The live display of `loadgen run`: its lines fit the terminal and never cut a value, on a
real pseudo-terminal of 80 columns and in a pipe (a CI log)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from io import StringIO
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from actors.stats import SenderStats
from loadgen.cli.display import Display, block, clock, fit, plain
from loadgen.engine.progress import Progress, RecentCommits

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
LOADGEN = Path(sys.executable).parent / "loadgen"
VOCABULARY = ("planned", "scheduled", "sent", "committed", "reverted", "rejected", "dropped", "unsent", "in flight")
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def progress(**over) -> Progress:
    stats = {"scheduled": 44, "sent": 44, "inflight": 2, "committed": 40, "max_lag_s": 0.002, "max_answer_s": 0.004}
    fields = {
        "phase": "reveal", "epoch": 0, "planned": 66, "stats": stats, "elapsed_s": 12.0, "phase_left_s": 3.0,
        "interval_s": 0.5, "run_left_s": 3.0, "tx_per_s": 11.8, "latency_p95_s": 1.97,
    } | over  # fmt: skip
    fields["stats"] = SenderStats(**fields["stats"])
    return Progress(**fields)


HUGE = {k: 12_345_678 for k in ("scheduled", "sent", "inflight", "committed", "reverted", "rejected", "dropped", "unsent")}
SNAPSHOTS = [
    progress(),
    progress(epoch=3, epochs=10, phase="commit", phase_left_s=0.0, latency_p95_s=None, tx_per_s=0.0),
    progress(planned=99_999_999, stats=HUGE | {"max_lag_s": 2.5, "max_answer_s": 0.9}, lagging=True, run_left_s=86_399.0),
    progress(phase="a-long-phase-name-from-a-plug-in", epochs=1000, epoch=999, run_left_s=0.0, phase_left_s=0.0),
]


@pytest.mark.unit
@pytest.mark.parametrize("width", [80, 60, 40])
@pytest.mark.parametrize("p", SNAPSHOTS)
def test_the_live_block_fits_the_width_and_keeps_every_label_with_its_value(p, width):
    lines = [t.plain for t in block(p, "reveal: sending", 75.0, width)]
    assert all(cell_len(line) <= width for line in lines), lines
    text = "\n".join(lines)
    for word in VOCABULARY:
        assert re.search(rf"(^|  ){word} [\d,]+(  |$)", text, re.M), (word, lines)
    assert "1:15" in lines[0]  # the elapsed time
    assert re.search(r"\d+% \([\d,]+/[\d,]+ done\)", text)
    assert ("ETA ~" in text) == (p.run_left_s > 0)
    assert ("GENERATOR LAGGING 2.50 s" in text) == p.lagging
    assert "…" not in text


@pytest.mark.unit
def test_the_block_before_any_progress_says_what_is_being_done_with_a_moving_clock():
    assert [t.plain for t in block(None, "starting a local Ray…", 7.4, 80, "⠹")] == ["⠹ 0:07  starting a local Ray…"]


@pytest.mark.unit
@pytest.mark.parametrize("p", SNAPSHOTS)
def test_the_plain_line_is_one_whole_line(p):
    line = plain(p, 3725.0)
    assert "\n" not in line and "…" not in line
    assert line.startswith("[1:02:05] ")
    for word in VOCABULARY:
        assert re.search(rf"\b{word} [\d,]+", line), word
    assert f"{p.stats.committed:,}" in line


@pytest.mark.unit
@given(st.lists(st.text(alphabet="ab :,.0123456789", min_size=1, max_size=30), max_size=12), st.integers(10, 120))
def test_fit_never_splits_a_field_nor_passes_the_width(fields, width):
    lines = fit(fields, width)
    assert "  ".join(lines) == "  ".join(fields)  # every field, whole and in order
    for line in lines:
        assert cell_len(line) <= width or any(line == f for f in fields)  # only a field wider than the line


@pytest.mark.unit
def test_clock():
    assert [clock(s) for s in (0, 7.4, 59.6, 754, 3725, -1)] == ["0:00", "0:07", "1:00", "12:34", "1:02:05", "0:00"]


@pytest.mark.unit
def test_done_counts_a_refused_transaction_only_where_it_is_not_sent_again():
    stats = {"committed": 50, "reverted": 1, "dropped": 2, "unsent": 3, "rejected": 4}
    assert progress(stats=stats).done == 56
    assert progress(stats=stats, fixed_slots=True).done == 60
    assert progress(stats=stats, planned=55).done == 55  # retries never take it past the plan


@pytest.mark.unit
def test_recent_commits_are_the_last_seconds_rate_and_latency():
    recent = RecentCommits(window_s=5.0)
    now = 1_000.0

    def rows(included: list[float], status: str = "committed") -> pa.Table:
        return pa.table(
            {
                "status": [status] * len(included),
                "t_included": included,
                "latency_s": [1.0 + i / 100 for i in range(len(included))],
            }
        )

    recent.add(rows([now - 9.0] * 10))  # older than the window
    recent.add(rows([now - 4.0 + i / 100 for i in range(100)]))
    recent.add(rows([now - 1.0] * 30, status="reverted"))  # not committed
    rate, p95 = recent.now(now)
    assert rate == pytest.approx(100 / 5.0)
    assert p95 == pytest.approx(1.0 + 0.95 * 0.99, abs=0.01)
    assert recent.now(now + 10) == (0.0, None)


def _display() -> tuple[Display, StringIO]:
    out = StringIO()
    return Display(Console(file=out, width=80, force_terminal=False)), out


@pytest.mark.unit
def test_a_log_gets_each_phase_s_first_and_last_numbers_and_a_line_every_few_seconds():
    display, out = _display()
    display.progress(progress(phase="commit", stats={"scheduled": 6, "sent": 6, "inflight": 6}))
    display.progress(progress(phase="commit", stats={"scheduled": 6, "sent": 6, "committed": 6}))  # within 5 s: held back
    display.event("reveal: the node estimates 583,688 gas for the first transaction, each gets 758,794")
    display.progress(progress(phase="reveal"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("[0:00] commit, 0% (0/66 done)")
    assert lines[1].startswith("[0:00] commit, 9% (6/66 done)")  # the held-back one, before what comes next
    assert lines[2] == "· reveal: the node estimates 583,688 gas for the first transaction, each gets 758,794"  # whole
    assert lines[3].startswith("[0:00] reveal, 60% (40/66 done), ETA ~0:05 | planned 66, scheduled 44")


@pytest.mark.unit
def test_the_display_says_when_the_node_answers_more_slowly_than_the_pace():
    display, out = _display()
    stats = {"scheduled": 10, "sent": 10, "max_answer_s": 0.3, "max_lag_s": 0.001}
    display.progress(progress(stats=stats, interval_s=0.1))
    assert "node answers in 0.30 s > pace 0.1 s" in out.getvalue()
    quiet, out = _display()
    quiet.progress(progress(stats=stats | {"max_answer_s": 0.05}, interval_s=0.1))
    assert out.getvalue() and "node answers" not in out.getvalue()


# the quickstart, as a user sees it ------------------------------------------------------------
STAGES = ("· starting the geth devnet…", "· deploying FederatedLearning…", "· 6 workers in loadgen's own process", "· commit: draining")
STAGES += ("· reveal: draining", "· round 1: closing the reveal phase, electing 2 pool(s)…", "· stopping the devnet…")


def _run_in_a_terminal(cwd: Path, columns: int, timeout_s: float = 300) -> tuple[int, str]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is `columns` wide before loadgen asks
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
            os.chdir(cwd)
            env = os.environ | {"COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
            os.execve(str(LOADGEN), [str(LOADGEN), "run", str(QUICKSTART), "--out", "runs", "--metrics-port", "0"], env)
        finally:
            os._exit(127)
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 1.0)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child is gone and its terminal with it
                    break
                if not data:
                    break
                out += data
        else:
            os.kill(pid, 9)
            pytest.fail(f"still running after {timeout_s} s:\n{out.decode(errors='replace')[-3000:]}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def _run_folder(lines: list[str], cwd: Path) -> Path:
    (done,) = [line for line in lines if line.startswith("done in ")]
    folder = cwd / done.split("next: loadgen report ", 1)[1]
    assert (folder / "summary.json").is_file(), done
    return folder


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_on_an_80_column_terminal_every_line_fits_and_every_stage_is_said(tmp_path):
    code, raw = _run_in_a_terminal(tmp_path, 80)
    assert code == 0, raw[-3000:]
    # what the terminal was sent, line by line: each write between two line starts is one line
    lines = [line for line in re.split(r"\r\n|\r|\n", CSI.sub("", raw)) if line.strip()]
    assert "Traceback" not in raw
    too_wide = [line for line in lines if cell_len(line) > 80]
    assert not too_wide, too_wide
    for stage in STAGES:
        assert any(line.startswith(stage) for line in lines), (stage, lines[-60:])
    bars = [line for line in lines if re.search(r"━.*  \d+% \(\d+/66 done\)", line)]
    assert bars and any("ETA ~" in b for b in bars), lines[-60:]
    assert any("66/66 done" in b for b in bars)
    clocks = {m.group(1) for line in lines if (m := re.match(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (\d+:\d\d)  ", line))}
    assert len(clocks) >= 10  # the elapsed time moves, between phases too
    assert any(re.search(r"now \d+\.\d tx/s  p95 latency \d+\.\d\d s  schedule lag", line) for line in lines)
    _run_folder(lines, tmp_path)


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_in_a_pipe_the_log_has_plain_progress_lines_and_whole_paths(tmp_path):
    env = os.environ | {"COLUMNS": "80"}
    cmd = [str(LOADGEN), "run", str(QUICKSTART), "--out", str(tmp_path / "a-folder-with-a-long-name" / "for-the-runs")]
    result = subprocess.run(
        [*cmd, "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:]
    lines = result.stdout.splitlines()
    assert "\x1b[" not in result.stdout  # no terminal codes in a log
    plain_lines = [line for line in lines if re.match(r"\[\d+:\d\d\] ", line)]
    assert len(plain_lines) >= 4, lines
    for line in plain_lines:
        for word in VOCABULARY:
            assert re.search(rf"\b{word} [\d,]+", line), (word, line)
        assert "tx/s" in line and "p95 latency" in line
    assert any("66/66 done" in line for line in plain_lines)  # the last numbers of the run
    # an ellipsis only ends a stage's line ("starting the geth devnet…"), never cuts a value
    assert all(line.startswith("· ") and line.endswith("…") for line in lines if "…" in line), [x for x in lines if "…" in x]
    for stage in STAGES:
        assert any(line.startswith(stage) for line in lines), stage
    (parquet,) = [line for line in lines if line.startswith("transactions: ")]
    assert Path(parquet.removeprefix("transactions: ")).is_file()
    folder = _run_folder(lines, Path("/"))
    assert folder.parent == tmp_path / "a-folder-with-a-long-name" / "for-the-runs"

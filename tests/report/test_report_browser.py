"""The report of a real run (the quickstart on the embedded geth network), opened in headless
Chromium over the DevTools protocol: it renders, every image loads, the console stays clean; and
its --json numbers add up to the run's rows."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

BROWSER = shutil.which("chromium")
IMAGES_STATE = """
(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  return {
    title: document.title,
    text: document.body.innerText,
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth,
                                            shownWidth: i.getBoundingClientRect().width})),
  };
})()
"""


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, messages ended
    by NUL): no port to find or to collide with another engineer's."""

    def __init__(self, profile: Path) -> None:
        assert BROWSER, "chromium is not installed: scripts/setup.sh installs it (apt-get install chromium)"
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()

        def fds_3_and_4() -> None:
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        args = [
            BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1400,1000",
            "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=fds_3_and_4, pass_fds=(3, 4)
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer in time"
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                assert chunk, f"Chromium closed the pipe (exit code {self.proc.poll()})"
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 60) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            got = self._message(deadline)
            if got.get("id") == self._next:
                assert "error" not in got, f"{method}: {got['error']}"
                return got["result"]
            self.events.append(got)

    def wait_for(self, method: str, session: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._message(deadline))

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # it may close the pipe before answering
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    """What a reader would see in red in the console: console.error/assert calls, uncaught
    exceptions, and the browser's own errors (a resource that failed to load, a blocked request)."""
    errors = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    return errors


def open_page(path: Path, profile: Path) -> tuple[dict[str, Any], list[str]]:
    """Loads the file and returns what the page shows (title, text, each image's state) and its console errors."""
    browser = Chromium(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.send(f"{domain}.enable", session=session)
        navigated = browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        assert "errorText" not in navigated, navigated
        browser.wait_for("Page.loadEventFired", session)
        state = browser.send("Runtime.evaluate", {"expression": IMAGES_STATE, "awaitPromise": True, "returnByValue": True}, session=session)
        assert "exceptionDetails" not in state, state
        return state["result"]["value"], console_errors(browser.events)
    finally:
        browser.close()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """One quickstart run on the embedded 4-node geth network, shared by the module's tests."""
    out = tmp_path_factory.mktemp("runs")
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "run", "configs/quickstart.yaml", "--out", str(out), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = out.iterdir()
    return run_dir


def report(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", "report", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_the_page_of_a_real_run_renders_with_every_image_and_no_console_error(real_run, tmp_path):
    result = report(real_run)
    assert result.returncode == 0, result.stderr
    page, errors = open_page(real_run / "report.html", tmp_path / "profile")
    assert errors == []
    assert page["title"] == f"loadgen run {real_run.name}"
    names = {i["alt"] for i in page["images"]}
    # blocks.parquet gives the block chart, txpool.parquet the pools'
    assert names == {"rates", "commit ratio", "schedule lag", "latency", "blocks", "txpool"}
    for image in page["images"]:
        assert image["complete"] and image["naturalWidth"] > 0, image
        assert image["shownWidth"] > 300, image  # laid out at a readable size, not collapsed
    text = page["text"]
    assert "PASS" in text and "By endpoint" in text and "By phase" in text
    manifest = json.loads((real_run / "manifest.json").read_text())
    assert all(url in text for url in manifest["endpoints"])  # one row per endpoint
    assert "workload.model_length" in text and "10,000" in text  # the config, flattened


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_the_comparison_page_renders_both_figures_and_the_changes(real_run, tmp_path):
    result = report(real_run, real_run, "--out", tmp_path / "cmp", "--offline")
    assert result.returncode == 0, result.stderr
    page, errors = open_page(tmp_path / "cmp" / "compare.html", tmp_path / "profile")
    assert errors == []
    assert page["title"] == "loadgen: 2 runs compared"
    assert {i["alt"] for i in page["images"]} == {"compare", "over time"}
    for image in page["images"]:
        assert image["complete"] and image["naturalWidth"] > 0 and image["shownWidth"] > 300, image
    text = page["text"]
    assert "B vs A" in text and "+0.0%" in text and "The same configuration." in text


@pytest.mark.chain
@pytest.mark.ray
@pytest.mark.slow
def test_the_report_json_of_a_real_run_adds_up_to_its_rows(real_run):
    result = report(real_run, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    summary = json.loads((real_run / "summary.json").read_text())
    table = pq.read_table(real_run / "transactions.parquet")
    assert data["headline"]["scheduled"] == summary["scheduled"] == table.num_rows
    assert data["headline"]["passed"] is summary["passed"]
    window, series = data["window_s"], data["series"]
    assert 10 <= len(series["t_s"]) <= 120  # a run of ~12 s still gets at least ten points
    assert round(sum(series["scheduled_tps"]) * window) == summary["scheduled"]
    assert round(sum(series["sent_tps"]) * window) == summary["scheduled"] - summary["unsent"]
    assert round(sum(series["committed_tps"]) * window) == summary["committed"]
    assert [p["name"] for p in data["phases"]] == ["commit", "reveal"]
    assert sum(e["scheduled"] for e in data["by_endpoint"]) == table.num_rows
    assert len(data["by_endpoint"]) == len(set(table.column("endpoint").to_pylist())) == 4
    assert {p["key"]: p["scheduled"] for p in data["by_phase"]} == {"commit": 6, "reveal": 60}
    # the terminal (stderr beside --json) has the same breakdowns as tables
    assert "by phase" in result.stderr and "by endpoint" in result.stderr
    assert all(e["key"] in result.stderr for e in data["by_endpoint"])
    blocks = pq.read_table(real_run / "blocks.parquet")
    assert 0 < data["blocks"]["blocks"] <= blocks.num_rows
    assert data["blocks"]["gas_used"] >= sum(g for g in table.column("gas_used").to_pylist() if g)
    assert data["config"]["workload.kind"] == "fl-round"
    pools = pq.read_table(real_run / "txpool.parquet")
    assert set(pools.column("endpoint").to_pylist()) == set(json.loads((real_run / "manifest.json").read_text())["endpoints"])
    assert data["txpool"]["samples"] == len(set(pools.column("t").to_pylist())) >= 10  # about once a second over a ~12 s run
    # pending counted once: the fullest pool at each sample (a gossiped transaction sits in all four)
    assert data["txpool"]["pending_max"] == max(
        max(p for p, t in zip(pools.column("pending").to_pylist(), pools.column("t").to_pylist(), strict=True) if t == at)
        for at in set(pools.column("t").to_pylist())
    )


@pytest.mark.subprocess
def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><head><title>t</title></head><body>"
        "<img alt='broken' src='data:image/png;base64,AAAA'><img alt='missing' src='missing.png'>"
        "<script>console.error('boom')</script></body></html>"
    )
    shown, errors = open_page(page, tmp_path / "profile")
    assert [i["naturalWidth"] for i in shown["images"]] == [0, 0]
    assert "boom" in errors  # the page's own console.error
    assert any("Failed to load resource" in e for e in errors)  # the browser's error for missing.png

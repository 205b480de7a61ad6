"""The console script as a user meets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadgen import __version__

LOADGEN = [sys.executable, "-m", "loadgen"]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LOADGEN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"loadgen {__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "loadgen"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == f"loadgen {__version__}"


def test_bad_flag_is_one_line_and_exit_2():
    result = run("devnet", "--block-time", "soon")
    assert result.returncode == 2
    assert "--block-time" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_anvil_is_one_line_and_exit_2(tmp_path):
    result = run("devnet", "--port", "0", env=os.environ | {"LOADGEN_ANVIL": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("loadgen: error: LOADGEN_ANVIL=")


def test_smoke_round_end_to_end():
    result = run("devnet", "--port", "0", "--smoke")
    assert result.returncode == 0, result.stderr
    assert "with 2/3 votes, rewards [1, 1, 0]" in result.stdout
    assert result.stdout.rstrip().endswith("OK")


def test_foreground_devnet_prints_its_url_and_stops_on_sigint():
    proc = subprocess.Popen([*LOADGEN, "devnet", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("devnet: http://127.0.0.1:")
    assert "chain id 1337, gas price 0" in first
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0

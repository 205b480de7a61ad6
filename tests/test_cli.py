"""The console script as a user meets it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen import __version__

LOADGEN = [sys.executable, "-m", "loadgen"]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LOADGEN, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.subprocess
def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"loadgen {__version__}"


@pytest.mark.subprocess
def test_console_script_is_installed():
    script = Path(sys.executable).parent / "loadgen"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == f"loadgen {__version__}"


@pytest.mark.subprocess
def test_bad_flag_is_one_line_and_exit_2():
    result = run("devnet", "--block-time", "soon")
    assert result.returncode == 2
    assert "--block-time" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "configs/quickstart.yaml", "--metrics-port", "70000"], "--metrics-port: 70000 is not a port"),
        (["run", "configs/quickstart.yaml", "--endpoints", ","], "--endpoints: no URL given"),
        (["search", "configs/quickstart.yaml", "--lo", "0.1", "--hi", "1", "--endpoints", ""], "--endpoints: no URL given"),
        (["estimate", "--pace", "-1"], "--pace: -1 seconds"),
        (["devnet", "--port", "99999"], "--port: 99999 is not a port"),
    ],
)
def test_bad_values_are_refused_before_anything_starts(args, says):
    # nothing is started: no devnet, no Ray (an empty --endpoints used to run on the devnet, exit 0)
    result = run(*args, timeout=30)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.subprocess
def test_what_this_machine_cannot_do_is_refused_in_seconds_before_a_chain_or_ray_starts(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--out", str(a_file)], f"--out {a_file} is a file"),
            (["--out", "/proc/no-such-place"], "cannot create it"),
            (["--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1 (Connection refused)"),
            (["--ray-address", "nonsense"], "write it as host:port"),
            (["--endpoints", "http://127.0.0.1:1"], "no answer from http://127.0.0.1:1 (connection refused): is the node running"),
            (["--metrics-port", str(port), "--metrics-bind", "127.0.0.1"], f"cannot serve metrics on 127.0.0.1:{port}"),
        ]
        for args, says in cases:
            started = time.monotonic()
            extra = [] if "--out" in args else ["--out", str(tmp_path / "runs")]
            extra += [] if "--metrics-port" in args else ["--metrics-port", "0"]  # 9464 may be another run's
            result = run("run", "configs/quickstart.yaml", *args, *extra, timeout=60)
            assert result.returncode == 2, (args, result.stderr)
            assert says in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert time.monotonic() - started < 15  # no devnet (4 geth nodes for quickstart), no Ray was started
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.unit
def test_an_unexpected_error_is_one_line_exit_3_and_its_traceback_is_behind_debug(monkeypatch, capsys):
    from loadgen import cli

    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli.estimate, "run", boom)
    assert cli.main(["estimate", "--pace", "1"]) == cli.INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert err == "loadgen: internal error: RuntimeError: something\\nbroke (--debug shows where)\n"
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "estimate", "--pace", "1"])


@pytest.mark.subprocess
def test_missing_anvil_is_one_line_and_exit_2(tmp_path):
    result = run("devnet", "--port", "0", env=os.environ | {"LOADGEN_ANVIL": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("loadgen: error: LOADGEN_ANVIL=")


@pytest.mark.parametrize("client", ["anvil", pytest.param("geth", marks=pytest.mark.slow)])
@pytest.mark.chain
def test_smoke_round_end_to_end(client):
    result = run("devnet", "--client", client, "--nodes", "2", "--port", "0", "--smoke")
    assert result.returncode == 0, result.stderr
    assert "with 2/3 votes, rewards [1, 1, 0]" in result.stdout
    assert result.stdout.rstrip().endswith("OK")


@pytest.mark.chain
def test_foreground_geth_network_prints_every_endpoint_and_stops_on_sigterm(tmp_path):
    targets = tmp_path / "targets" / "devnet.json"
    cmd = [*LOADGEN, "devnet", "--client", "geth", "--nodes", "3", "--port", "0", "--txpool-global-slots", "64"]
    proc = subprocess.Popen([*cmd, "--prometheus-targets", str(targets)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(5)]
    assert lines[0].startswith("devnet: embedded geth network: 3 clique nodes"), lines
    assert "Geth/v1.10.3" in lines[0]
    urls = [line.split()[1] for line in lines[1:4]]
    assert [line.split()[0] for line in lines[1:4]] == ["node0", "node1", "node2"]
    assert all(u.startswith("http://127.0.0.1:") for u in urls)
    assert {t["labels"]["endpoint"] for t in json.loads(targets.read_text())} == set(urls)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not targets.exists()  # the targets go with the nodes


@pytest.mark.subprocess
def test_bad_devnet_settings_are_one_line_and_exit_2():
    for args, field in ((["--client", "geth", "--block-time", "0.5"], "block_time_s"), (["--port", "99999"], "--port")):
        result = run("devnet", *args)
        assert result.returncode == 2, result.stderr
        assert field in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.chain
def test_foreground_devnet_prints_its_url_and_stops_on_sigint():
    proc = subprocess.Popen([*LOADGEN, "devnet", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first, second = proc.stdout.readline(), proc.stdout.readline()
    assert first.startswith("devnet: embedded devnet (Anvil) at http://127.0.0.1:")
    assert "chain id 1337" in first
    assert second.strip().startswith("http://127.0.0.1:")
    while "Ctrl-C stops it." not in proc.stdout.readline():  # from here on it waits for the node
        pass
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)  # reads stderr as it goes: a full pipe cannot hold the exit up
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 15 s after SIGINT; stderr: {proc.communicate()[1][-2000:]}")
    assert proc.returncode == 0, err


def _subcommands(parser: argparse.ArgumentParser, prog: str = "loadgen") -> dict[str, argparse.ArgumentParser]:
    """Every parser under the top one, nested ones (``import diablo``) included, by their prog."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prog} {name}"] = sub
                found |= _subcommands(sub, f"{prog} {name}")
    return found


MINE = ("loadgen run", "loadgen search", "loadgen sweep", "loadgen devnet", "loadgen import", "loadgen import diablo")


@pytest.mark.unit
@pytest.mark.parametrize("prog", MINE)
def test_every_option_says_its_default_and_the_help_ends_with_examples(prog, monkeypatch):
    from loadgen.cli import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parser = _subcommands(build_parser())[prog]
    formatter = parser.formatter_class(prog)
    for action in parser._actions:
        flag = isinstance(action, argparse._StoreTrueAction | argparse._HelpAction)
        if action.option_strings and not flag and not action.required:
            said = formatter._get_help_string(action)
            assert "(default" in said, (action.option_strings, said)
    text = parser.format_help()
    assert "\nexamples:\n  loadgen " in text
    assert all(len(line) <= 80 for line in text.splitlines()), [line for line in text.splitlines() if len(line) > 80]


@pytest.mark.unit
def test_set_and_the_metrics_options_read_the_same_wherever_they_are():
    from loadgen.cli import build_parser

    subs = _subcommands(build_parser())
    helps = {}
    for prog in ("loadgen run", "loadgen search", "loadgen sweep"):
        helps[prog] = {a.option_strings[0]: a.help for a in subs[prog]._actions if a.option_strings}
    for option in ("--set", "--endpoints", "--ray-address", "--metrics-port", "--metrics-bind"):
        assert len({h[option] for h in helps.values()}) == 1, option


@pytest.mark.subprocess
def test_a_bad_option_points_to_its_subcommand_s_help():
    result = run("search", "configs/quickstart.yaml", "--metrics-bind")
    assert result.returncode == 2
    assert result.stderr.startswith("loadgen search: error: argument --metrics-bind: expected one argument")
    assert result.stderr.rstrip().endswith("(see `loadgen search --help`)")
    result = run("import", "diablo")
    assert "(see `loadgen import diablo --help`)" in result.stderr

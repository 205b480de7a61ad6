"""The console script as a user meets it."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.hdaccount.mnemonic import Language, Mnemonic

from loadgen import __version__, cli
from loadgen.chains.devnet import DEV_MNEMONIC

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
            (["--endpoints", "http://127.0.0.1:1"], "no mnemonic for the workers' keys: set LOADGEN_MNEMONIC"),
            (["--endpoints", "http://127.0.0.1:1", "--mnemonic"], "no answer from http://127.0.0.1:1 (connection refused): is the node"),
            (["--metrics-port", str(port), "--metrics-bind", "127.0.0.1"], f"cannot serve metrics on 127.0.0.1:{port}"),
        ]
        for args, says in cases:
            started = time.monotonic()
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOADGEN_MNEMONIC")}
            if "--mnemonic" in args:  # (not an option: the case's own mark that it has one)
                args = [a for a in args if a != "--mnemonic"]
                env["LOADGEN_MNEMONIC"] = "test test test test test test test test test test test junk"
            extra = [] if "--out" in args else ["--out", str(tmp_path / "runs")]
            extra += [] if "--metrics-port" in args else ["--metrics-port", "0"]  # 9464 may be another run's
            result = run("run", "configs/quickstart.yaml", *args, *extra, env=env, timeout=60)
            assert result.returncode == 2, (args, result.stderr)
            assert says in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert time.monotonic() - started < 15  # no devnet (4 geth nodes for quickstart), no Ray was started
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.unit
def test_an_unexpected_error_is_one_line_exit_3_and_its_traceback_is_behind_debug(monkeypatch, capsys):

    def boom(args):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cli.command("estimate"), "run", boom)
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
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
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
    banner = []
    while "Ctrl-C stops it." not in (line := proc.stdout.readline()):  # from here on it waits for the node
        banner.append(line.strip())
    # what running against it needs, ready to paste: the public test mnemonic, marked as one
    assert f"export LOADGEN_MNEMONIC='{DEV_MNEMONIC}'" in banner
    assert f"loadgen run configs/quickstart.yaml --endpoints {second.strip()}" in banner
    assert any(b.startswith("accounts: 10 of the public test mnemonic funded (#0 0x") for b in banner), banner
    assert any("never use it for value" in b for b in banner)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)  # reads stderr as it goes: a full pipe cannot hold the exit up
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 15 s after SIGINT; stderr: {proc.communicate()[1][-2000:]}")
    assert proc.returncode == 128 + signal.SIGINT, err


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


def with_a_bad_checksum(words: list[str]) -> list[str]:
    """The phrase with its last word (the one that carries the checksum) changed until it fails."""
    bip39 = Mnemonic(Language.ENGLISH)
    for other in bip39.wordlist:
        changed = [*words[:-1], other]
        if not bip39.is_mnemonic_valid(" ".join(changed)):
            return changed
    raise AssertionError("every last word passes")


@pytest.mark.unit
@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda words: words[:10], "10 words given"),
        (lambda words: [*words[:3], "notaword", *words[4:]], "word 4 not in the English word list"),
        (with_a_bad_checksum, "bad checksum"),
    ],
)
def test_a_bad_mnemonic_is_one_line_exit_2_without_a_word_of_it(tmp_path, monkeypatch, capsys, damage, says):
    Account.enable_unaudited_hdwallet_features()
    _, phrase = Account.create_with_mnemonic()
    words = damage(phrase.split())
    monkeypatch.setenv("LOADGEN_MNEMONIC", " ".join(words))
    out = tmp_path / "runs"
    # named endpoints nothing listens at: the phrase is judged before any chain or Ray is asked
    code = cli.main(["run", "configs/quickstart.yaml", "--endpoints", "http://127.0.0.1:9", "--out", str(out), "--metrics-port", "0"])
    said = capsys.readouterr()
    assert code == 2
    (line,) = said.err.splitlines()
    assert line.startswith("loadgen: error: LOADGEN_MNEMONIC is not a valid BIP-39 phrase") and says in line
    assert not out.exists() or not any(out.iterdir())  # no run folder: nothing started
    printed = said.out + said.err
    assert not [pair for pair in itertools.pairwise(words) if " ".join(pair) in printed]


@pytest.mark.unit
def test_an_endpoint_that_answers_a_web_page_is_one_line_with_its_status_and_first_characters(tmp_path, monkeypatch, capsys):
    import http.server
    import threading

    class ProxyPage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>\n<body><h1>Sign in to the corporate proxy</h1></body></html>")

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), ProxyPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("LOADGEN_MNEMONIC", "test test test test test test test test test test test junk")
        code = cli.main(["run", "configs/quickstart.yaml", "--endpoints", url, "--out", str(tmp_path), "--metrics-port", "0"])
    finally:
        server.shutdown()
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line.startswith(f"loadgen: error: cannot talk to the node at {url}: it answers HTTP 200 (text/html)")
    assert "'<html> <body><h1>Sign in to the corporate proxy" in line and "Expecting value" not in line


@pytest.mark.unit
def test_a_lost_ray_actor_is_one_plain_line_naming_it_and_why(monkeypatch, capsys):
    from ray.exceptions import ActorDiedError

    class Lost(ActorDiedError):
        def __str__(self) -> str:  # Ray's own words, as a run against a cluster got them
            return (
                "The actor died unexpectedly before finishing this task.\n\tclass_name: WatcherActor\n\tactor_id: 51c8\n"
                "\tnamespace: bfbc\nThe actor is dead because all references to the actor were removed including lineage "
                "ref count.\nThe actor never ran - it was cancelled before it started running."
            )

    def lose(args):
        raise Lost()

    monkeypatch.setattr(cli.command("estimate"), "run", lose)
    assert cli.main(["estimate", "--pace", "1"]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "loadgen: error: Ray lost its WatcherActor actor: all references to the actor were removed including lineage ref count "
        "(--debug shows where)"
    )


@pytest.mark.subprocess
def test_only_the_command_asked_for_is_imported_and_anything_else_gets_every_command():
    assert cli.chosen(["--debug", "run", "configs/quickstart.yaml"]) == "run"
    assert cli.chosen(["import", "diablo", "x"]) == "import"
    assert cli.chosen(["rn", "x"]) is None  # the parser names the choices
    assert cli.chosen(["--help", "run"]) is None and cli.chosen([]) is None
    code = (
        "import sys; from loadgen.cli import main; main(['estimate', '--pace', '1']); "
        "print(sorted(m for m in sys.modules if m.startswith('loadgen.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert "loadgen.cli.devnet" not in out and "loadgen.cli.sweep" not in out and "loadgen.cli.estimate" in out, out

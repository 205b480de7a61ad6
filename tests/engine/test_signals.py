"""A command stopped from outside, as `timeout`, systemd, a closed terminal or Ctrl-C stop it:
the signal reaches loadgen, which stops sending at once, keeps what happened and stops its Ray
and its chain; nothing of Ray's is printed, and the exit code names the signal.

Each command runs under coreutils `timeout`, which sends the signal it is given to loadgen's
whole process group, as a terminal or a service manager does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from loadgen.chains.devnet import free_port

pytestmark = [pytest.mark.subprocess, pytest.mark.chain, pytest.mark.ray]

LOADGEN = [sys.executable, "-m", "loadgen"]
# what a run stopped from outside must never print: Ray's own dumps and loadgen's last resort
NOISE = ("SIGTERM received", "Traceback", "(raylet)", "ActorDiedError", "internal error", "*** ")


def transfer_config(tmp_path: Path, duration_s: float = 40, block_time_s: float = 1, hosting: str = "ray") -> Path:
    """100 transfers a second: on Ray unless told otherwise (a local Ray is what a signal can
    catch half started or stopping), though one process carries them."""
    path = tmp_path / "transfers.yaml"
    doc = {
        "name": "signalled",
        "chain": {"devnet": {"client": "anvil", "block_time_s": block_time_s}},
        "workload": {"kind": "transfer", "workers": 20, "rate_tps": 100, "duration_s": duration_s},
        "run": {"commit_timeout_s": 10, "hosting": hosting},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def under_timeout(*args: str, tmp_path: Path) -> subprocess.Popen:
    """loadgen under `timeout` (never reached): signalling `timeout` signals loadgen's group.
    Every process it starts inherits a mark naming the test's folder (see ``ours``)."""
    cmd = ["timeout", "--preserve-status", "-s", "TERM", "600", *LOADGEN, *args]
    env = os.environ | {MARK: str(tmp_path)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)


def start_run(tmp_path: Path, config: Path | None = None) -> subprocess.Popen:
    config = config or transfer_config(tmp_path)
    return under_timeout("run", str(config), "--out", "runs", "--metrics-port", "0", tmp_path=tmp_path)


def assert_stopped_quietly(code: int, out: str, err: str, sig: int = signal.SIGTERM) -> None:
    """The exit code names the signal, and nothing of Ray's (or a traceback) was printed."""
    assert code == 128 + sig, (out[-2000:], err[-2000:])
    assert not [n for n in NOISE if n in err + out], err[-3000:]


def read_until(proc: subprocess.Popen, text: str, timeout_s: float = 120) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    pytest.fail(f"never printed {text!r}; stdout {lines[-20:]}; stderr {proc.communicate()[1][-2000:]}")


def finish(proc: subprocess.Popen, timeout_s: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {timeout_s:g} s after the signal; stderr: {proc.communicate()[1][-2000:]}")
    return proc.returncode, out, err


MARK = "LOADGEN_SIGNAL_TEST"
RAY_AND_NODES = ("raylet", "gcs_server", "anvil", "geth")


def ours(tmp_path: Path, *names: str) -> set[int]:
    """The processes of these names that one test's loadgen started (Ray's daemons and the
    nodes inherit its environment): another suite's beside it on the machine are not counted."""
    mark = f"{MARK}={tmp_path}".encode()
    found = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names and mark in (comm.parent / "environ").read_bytes().split(b"\0"):
                found.add(int(comm.parent.name))
        except OSError:
            continue
    return found


def assert_nothing_left(tmp_path: Path) -> None:
    deadline = time.monotonic() + 15
    while (left := ours(tmp_path, *RAY_AND_NODES)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


@pytest.mark.parametrize(
    "sig, moment, hosting",
    [
        (signal.SIGTERM, "transfer, ", "ray"),  # the phase's first progress line: it sends
        (signal.SIGTERM, "transfer, ", "process"),
        (signal.SIGHUP, "transfer, ", "ray"),
        (signal.SIGTERM, "draining", "process"),  # every slot sent, the last ones waiting for their blocks
    ],
)
@pytest.mark.solo  # the drain is caught while something is in flight: a busy machine lets it pass first
def test_a_signal_stops_sending_at_once_and_writes_everything(tmp_path, sig, moment, hosting):
    duration_s = 6 if moment == "draining" else 40
    # draining: a block every 30 s, so the phase (6 s, right after the block that funded the
    # workers) ends long before the next one and the drain lasts the 10 s commit timeout: a
    # collection a second is sure to see it, however busy the machine (with 3 s blocks the drain
    # could be over before the next collection)
    config = transfer_config(tmp_path, duration_s, block_time_s=30 if moment == "draining" else 1, hosting=hosting)
    proc = start_run(tmp_path, config)
    read_until(proc, moment)
    proc.send_signal(sig)
    signalled = time.time()
    code, out, err = finish(proc)
    assert_stopped_quietly(code, out, err, sig)
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["passed"] is False
    assert "INTERRUPTED" in out
    table = pq.read_table(run_dir / "transactions.parquet")
    assert table.num_rows == summary["scheduled"] == 100 * duration_s  # every slot has its row, sent or not
    t_sent = [t for t, status in zip(table["t_sent"].to_pylist(), table["status"].to_pylist(), strict=True) if status != "unsent"]
    # a stop stops: nothing goes out after the signal reached the workers
    assert max(t_sent) < signalled + 1.0
    assert (summary["unsent"] > 0) == (moment != "draining")
    assert_nothing_left(tmp_path)


def test_a_signal_while_the_run_sets_up_stops_it_and_everything_it_started(tmp_path):
    proc = start_run(tmp_path)
    read_until(proc, "starting a local Ray")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert_stopped_quietly(code, out, err)
    assert "interrupted" in out + err
    assert_nothing_left(tmp_path)


def test_a_second_signal_ends_the_clean_up_at_once_and_the_rows_stay_readable(tmp_path):
    proc = start_run(tmp_path)
    read_until(proc, "transfer, ")
    time.sleep(2)  # rows flushed as parts while the phase goes
    proc.send_signal(signal.SIGTERM)
    read_until(proc, "interrupted: stopping the workers")
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert_stopped_quietly(code, out, err)
    (run_dir,) = (tmp_path / "runs").iterdir()
    merged = run_dir / "transactions.parquet"
    rows = pq.read_table(merged) if merged.exists() else ds.dataset(run_dir / "transactions.parts").to_table()
    assert rows.num_rows > 0
    assert_nothing_left(tmp_path)


def test_a_search_stopped_by_sigterm_says_interrupted_and_stops_its_ray(tmp_path):
    config = transfer_config(tmp_path, duration_s=10)
    args = ("search", str(config), "--param", "workload.rate_tps", "--lo", "50", "--hi", "200", "--out", "searches", "--metrics-port", "0")
    proc = under_timeout(*args, tmp_path=tmp_path)
    time.sleep(1)
    deadline = time.monotonic() + 90
    while not list((tmp_path / "searches").rglob("trials/*/transactions.parts")) and time.monotonic() < deadline:
        time.sleep(0.2)  # a trial is sending
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert_stopped_quietly(code, out, err)
    assert "search interrupted after 0 trial(s); bracket so far 50 … 200" in out
    assert f"resume with: loadgen {' '.join(args)}" in out  # its folder given: the same command
    assert json.loads((tmp_path / "searches" / "search.json").read_text())["status"] == "interrupted"
    assert_nothing_left(tmp_path)


def test_runs_without_a_ray_address_each_start_their_own_ray_beside_a_running_cluster(tmp_path):
    """Ray's own default joins the cluster last started on the machine: two runs would share it
    (and stopping one killed the other's actors)."""
    with ray_head(dict(os.environ), cpus=1) as (env, port, _):
        config = transfer_config(tmp_path, duration_s=4)
        runs = [
            subprocess.Popen([*LOADGEN, "run", str(config), "--out", f"runs{i}", "--metrics-port", "0"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)
        ]  # fmt: skip
        results = [finish(run, timeout_s=180) for run in runs]
    clusters = []
    for i, (code, out, err) in enumerate(results):
        # two runs and a cluster on two cores may fall behind their schedule (INVALID, exit 4):
        # whose Ray each ran on is what counts here
        assert code in (0, 4), (out[-2000:], err[-2000:])
        assert "starting a local Ray" in out
        (run_dir,) = (tmp_path / f"runs{i}").iterdir()
        clusters.append(json.loads((run_dir / "manifest.json").read_text())["ray_cluster"])
    assert len(set(clusters)) == 2 and not any(c.endswith(f":{port}") for c in clusters), clusters


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def ray_head(env: dict[str, str], cpus: int = 2, dashboard: bool = False):
    """`ray start --head` on 127.0.0.1 under a Ray temp folder of its own, every port of it
    chosen free (a fixed default, e.g. the dashboard agent's 52365, may still be held by the
    cluster a test before stopped), stopped (every process of it) after."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="lgray", dir="/tmp"))  # short: Ray's socket paths live under it
    env = env | {"RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    taken: set[int] = set()
    port, dash, *agents = (free_port(taken=taken) for _ in range(6))
    ray_cli = str(Path(sys.executable).parent / "ray")
    head = [ray_cli, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus)]
    head += ["--disable-usage-stats", "--min-worker-port", "10002", "--max-worker-port", "19999"]
    for flag, agent_port in zip(
        ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"),
        agents,
        strict=True,
    ):
        head += [flag, str(agent_port)]
    if dashboard:  # what `ray job` talks to
        head += ["--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)]
    else:
        head += ["--include-dashboard=false"]
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield env, port, dash
    finally:
        for pid in [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline") if str(ray_tmp) in _cmdline(p)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_ray_job_stop_stops_a_submitted_run_as_sigterm_does(tmp_path):
    """`ray job submit` runs loadgen on the cluster (RAY_ADDRESS is the job's), `ray job stop`
    sends SIGTERM to it: the run stops sending, writes everything and says interrupted. Ray
    kills a job still running RAY_JOB_STOP_WAIT_TIME_S after (3 s by default): the cluster
    here gives it 60, as the docs tell operators to."""
    from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings

    ray_cli = str(Path(sys.executable).parent / "ray")
    with Devnet(DevnetSettings(block_time_s=1)) as node:
        config = tmp_path / "transfers.yaml"
        doc = {
            "name": "job",
            "chain": {"endpoints": [node.url]},
            "workload": {"kind": "transfer", "workers": 20, "rate_tps": 50, "duration_s": 120},
            "run": {"commit_timeout_s": 10},
        }
        config.write_text(yaml.safe_dump(doc))
        # RAY_AUTH_MODE=token: `ray start` protects the cluster with the machine's token (~/.ray/auth_token),
        # which the `ray job` commands send only when told to
        env = os.environ | {"LOADGEN_MNEMONIC": DEV_MNEMONIC, "RAY_JOB_STOP_WAIT_TIME_S": "60", "RAY_AUTH_MODE": "token"}
        with ray_head(env, dashboard=True) as (env, _, dash):
            address = ["--address", f"http://127.0.0.1:{dash}"]
            entry = [*LOADGEN, "run", str(config), "--out", str(tmp_path / "runs"), "--metrics-port", "0"]
            job = "loadgen-job-test"
            submit = [ray_cli, "job", "submit", *address, "--no-wait", "--submission-id", job, "--", *entry]
            deadline = time.monotonic() + 120
            while (done := subprocess.run(submit, env=env, capture_output=True, text=True, timeout=180)).returncode:
                # the dashboard answers before its agent takes jobs ("No available agent")
                assert "No available agent" in done.stderr and time.monotonic() < deadline, done.stderr[-2000:]
                time.sleep(2)
            deadline = time.monotonic() + 180
            while not list((tmp_path / "runs").rglob("transactions.parts/*")) and time.monotonic() < deadline:
                time.sleep(0.5)  # the run is sending
            subprocess.run([ray_cli, "job", "stop", *address, job], env=env, check=True, capture_output=True, timeout=120)
            logs = subprocess.run([ray_cli, "job", "logs", *address, job], env=env, capture_output=True, text=True, timeout=60).stdout
            status = subprocess.run([ray_cli, "job", "status", *address, job], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "was stopped" in status, status
    assert "interrupted: stopping the workers" in logs and "INTERRUPTED (no verdict" in logs, logs[-3000:]
    assert not [n for n in NOISE if n in logs], logs[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["verdict"] == "INTERRUPTED"
    assert summary["unsent"] > 0  # the schedule ran two minutes: what was still to come was never sent
    assert pq.read_table(run_dir / "transactions.parquet").num_rows == summary["scheduled"]

"""Key hygiene: a run's every output (Parquet, JSON, logs, metrics, the HTML report, what Ray
shows of its tasks and actors, Ray's own logs) holds neither a worker's private key nor the words
of the mnemonic they come from."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from eth_account import Account
from prometheus_client import generate_latest
from ray.util import state

from loadgen.chains.chain import connect
from loadgen.chains.devnet import Devnet, DevnetSettings, free_port
from loadgen.cli import main
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.engine.run import Run
from tests.support.runs import fl_experiment

pytestmark = [pytest.mark.chain, pytest.mark.ray]


def secrets_of(phrase: str, indices: range) -> list[str]:
    """What must never be written: every key in hex (with and without 0x) and every three
    consecutive words of the phrase (one word alone is an ordinary English word)."""
    source = MnemonicSource("test", phrase)
    keys = [bytes(derive_account(source, i).key).hex() for i in indices]
    words = phrase.split()
    return [*keys, *(f"0x{k}" for k in keys), *(" ".join(words[i : i + 3]) for i in range(len(words) - 2))]


def text_of(path: Path) -> str:
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    if path.suffix == ".parquet":  # compressed pages: read the values too
        text += str(pq.read_table(path).to_pylist())
    return text


def test_no_output_of_a_run_holds_a_key_or_the_mnemonic(tmp_path, monkeypatch):
    Account.enable_unaudited_hdwallet_features()
    _, phrase = Account.create_with_mnemonic()
    monkeypatch.setenv("LOADGEN_MNEMONIC", phrase)
    scraped: list[str] = []
    # with its dashboard, which serves what `ray list tasks` and `ray summary tasks` show
    context = ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_port=free_port(), logging_level=logging.ERROR)
    cluster = f"http://{context.dashboard_url}"
    ray_logs = Path(context.address_info["session_dir"]) / "logs"
    with contextlib.ExitStack() as stack:
        stack.callback(ray.shutdown)
        node = stack.enter_context(Devnet(DevnetSettings(block_time_s=0.25)))
        coordinator = derive_account(MnemonicSource("test", phrase), 0).address
        connect(node.url).provider.make_request("anvil_setBalance", [coordinator, hex(10**21)])  # type: ignore[arg-type]
        experiment = fl_experiment([node.url], model_length=2_000, pools=1)
        holder: dict[str, Run] = {}

        def on_progress(_p) -> None:
            scraped.append(generate_latest(holder["run"].metrics.registry).decode())
            scraped.append(str(state.list_tasks(address=cluster, detail=True, limit=10_000)))
            scraped.append(str(state.list_actors(address=cluster, detail=True)))
            scraped.append(str(state.summarize_tasks(address=cluster)))

        run = Run(experiment, tmp_path / "runs", metrics_port=0, metrics_linger_s=0, on_progress=on_progress)
        holder["run"] = run
        result = run.execute()
        assert main(["report", str(result.run_dir)]) == 0
        outputs = {p: text_of(p) for p in result.run_dir.rglob("*") if p.is_file()}
        outputs |= {p: text_of(p) for p in ray_logs.rglob("*") if p.is_file()}
    assert result.summary["committed"] == 2 * (1 + 2)
    assert any(p.suffix == ".html" for p in outputs) and any(p.name == "transactions.parquet" for p in outputs)
    assert scraped and any("loadgen_transactions_total" in s for s in scraped) and any("SenderActor" in s for s in scraped)
    secrets = secrets_of(phrase, range(0, 3))
    for where, text in [*((str(p), t) for p, t in outputs.items()), *(("Ray state / metrics", s) for s in scraped)]:
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}… found in {where}"

"""`loadgen devnet`: the embedded Quorum-like chain in the foreground, or a smoke round on it."""

from __future__ import annotations

import argparse
import contextlib
import signal
import time

from loadgen import contracts, model
from loadgen.accounts import MnemonicSource, derive_account
from loadgen.chain import connect, probe
from loadgen.devnet import DEFAULT_BLOCK_GAS_LIMIT, DEFAULT_CHAIN_ID, Devnet, DevnetSettings
from loadgen.protocol import Coordinator, Worker, play_round


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="start the embedded Quorum-like devnet (Anvil)", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8545, help="RPC port; 0 picks a free one (default 8545)")
    p.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks; 0 mines one block per transaction (default 1)")
    p.add_argument("--gas-limit", type=int, default=DEFAULT_BLOCK_GAS_LIMIT, help=f"block gas limit (default {DEFAULT_BLOCK_GAS_LIMIT:,})")
    p.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID, help=f"chain id (default {DEFAULT_CHAIN_ID})")
    p.add_argument("--accounts", type=int, default=10, help="prefunded dev accounts (gas is free anyway)")
    p.add_argument("--smoke", action="store_true", help="deploy the contracts, play one round with redundancy 3, print the result and exit")


def run(args: argparse.Namespace) -> int:
    settings = DevnetSettings(
        host=args.host,
        port=args.port or None,
        block_time_s=args.block_time,
        block_gas_limit=args.gas_limit,
        chain_id=args.chain_id,
        accounts=args.accounts,
    )
    with Devnet(settings) as node:
        info = probe(connect(node.url))
        print(
            f"devnet: {node.url}  chain id {info.chain_id}, gas price {info.gas_price}, "
            f"block time {args.block_time:g}s, block gas limit {info.block_gas_limit:,} ({info.client_version})",
            flush=True,
        )
        if args.smoke:
            return smoke_round(node.url)
        print("Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        with contextlib.suppress(KeyboardInterrupt):
            node.wait()
        return 0


def smoke_round(url: str, model_length: int = 2_500, chunk_size: int = 1_000) -> int:
    """One round with one pool of three: two workers agree, one does not."""
    w3 = connect(url)
    source = MnemonicSource("devnet", DevnetSettings().mnemonic)
    coordinator_account, *accounts = (derive_account(source, i) for i in range(4))
    started = time.monotonic()
    fl = contracts.deploy(w3, coordinator_account, "FederatedLearning")
    workers = [Worker(w3, a, fl) for a in accounts]
    models = [model.random_model(model_length, seed) for seed in (1, 1, 2)]
    round_id, (result,) = play_round(Coordinator(w3, coordinator_account, fl), workers, models, pool_size=3, chunk_size=chunk_size)
    rewards = [fl.functions.rewardOf(w.address).call() for w in workers]
    ok = result.digest == model.model_digest(models[0], chunk_size) and rewards == [1, 1, 0]
    print(
        f"smoke round {round_id}: FederatedLearning at {fl.address}, elected {result.digest.hex()[:16]}… "
        f"with {result.votes}/3 votes, rewards {rewards} in {time.monotonic() - started:.1f}s: {'OK' if ok else 'WRONG'}"
    )
    return 0 if ok else 1

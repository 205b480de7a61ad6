"""`loadgen devnet`: a local chain in the foreground (Anvil, or a multi-node geth/GoQuorum
network), or a smoke round on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from loadgen.chains import contracts
from loadgen.chains.chain import connect
from loadgen.chains.devnet import DEFAULT_CHAIN_ID, DEV_MNEMONIC
from loadgen.chains.fees import Fees
from loadgen.chains.gethnet import TXPOOL_DEFAULTS, GethNetwork
from loadgen.chains.node import Node
from loadgen.chains.probe import probe
from loadgen.cli import types
from loadgen.common.errors import ConfigError
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.config.schema import DevnetConfig, TxpoolConfig
from loadgen.engine import signals
from loadgen.engine.session import embedded_network
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.protocol import Coordinator, PoolMember, play_round

EXAMPLES = r"""examples:
  loadgen devnet                                 # one Anvil node on :8545
  loadgen devnet --client geth                   # 4 geth nodes, RPC on 8545+i
  loadgen devnet --client geth --nodes 8 --port 0 --txpool-global-slots 256 \
      --txpool-no-locals
  loadgen devnet --client geth \
      --prometheus-targets grafana/prometheus/targets/devnet.json
  LOADGEN_GOQUORUM=/opt/goquorum/geth \
      loadgen devnet --client goquorum --consensus raft
  loadgen devnet --client geth --port 0 --smoke  # deploy, play one round, exit

Ctrl-C, SIGTERM or SIGHUP stops the nodes and removes their data (unless
--data-dir); the exit code is 130, 143 or 129.
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="start a local chain: Anvil, or a multi-node geth/GoQuorum network", description=__doc__, epilog=EXAMPLES)
    p.add_argument("--client", choices=("anvil", "geth", "goquorum"), default="anvil", help="anvil, geth (clique) or goquorum")
    p.add_argument("--nodes", type=int, default=4, metavar="N", help="geth, goquorum: nodes of the network")
    p.add_argument(
        "--observers",
        type=int,
        default=0,
        metavar="N",
        help="geth, goquorum qbft or ibft: nodes that follow the chain without sealing, for `loadgen run --watch-endpoints` (default: 0)",
    )
    p.add_argument(
        "--consensus", choices=("clique", "qbft", "ibft", "raft"), help="geth: clique; goquorum: qbft, ibft or raft (default: clique; qbft)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address the nodes' RPC listens on")
    p.add_argument("--port", type=types.port, default=8545, help="RPC port of the first node (node i uses PORT+i); 0 picks free ports")
    p.add_argument(
        "--block-time",
        type=float,
        metavar="SECONDS",
        help="seconds between blocks; Anvil: 0 mines one block per transaction (default: 1; raft 0.05)",
    )
    p.add_argument("--gas-limit", type=int, metavar="GAS", help="block gas limit (default: Anvil 1e9, geth 1e8, GoQuorum 7e8)")
    p.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID, metavar="ID", help="chain id")
    p.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="geth, goquorum: keep the nodes' data here (default: a temporary directory)"
    )
    for key, default in TXPOOL_DEFAULTS.items():
        geth_flag = "lifetime, in seconds" if key == "lifetime_s" else key.replace("_", "")
        p.add_argument(
            f"--txpool-{key.replace('_', '-')}", type=int, dest=f"txpool_{key}", metavar="N",
            help=f"geth, goquorum: --txpool.{geth_flag} (default: {default})",
        )  # fmt: skip
    p.add_argument("--txpool-no-locals", action="store_true", help="apply the pool limits to what a node's own RPC received too")
    p.add_argument(
        "--prometheus-targets",
        type=Path,
        metavar="FILE",
        help="write the nodes' metrics ports to this Prometheus file_sd file while running (default: none)",
    )
    p.add_argument("--smoke", action="store_true", help="deploy the contracts, play one round with redundancy 3, print the result and exit")


def devnet_config(args: argparse.Namespace) -> DevnetConfig:
    txpool = {k: getattr(args, f"txpool_{k}") for k in TXPOOL_DEFAULTS if getattr(args, f"txpool_{k}") is not None}
    if args.txpool_no_locals:
        txpool["no_locals"] = True
    fields = {
        "client": args.client,
        "nodes": args.nodes,
        "observers": args.observers or None,
        "consensus": args.consensus,
        "block_time_s": args.block_time,
        "block_gas_limit": args.gas_limit,
        "chain_id": args.chain_id,
        "data_dir": str(args.data_dir) if args.data_dir else None,
    }
    if txpool:
        fields["txpool"] = TxpoolConfig(**txpool)
    if not 0 <= args.port <= 65535 - (400 + args.nodes + args.observers if args.client != "anvil" else 0):
        raise ConfigError("--port", f"{args.port} leaves no room for the nodes' ports", "use a port below 65000, or 0")
    try:
        return DevnetConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValueError as e:  # pydantic's: a value out of range
        raise ConfigError("devnet", str(e).splitlines()[-1].strip(), "see `loadgen devnet --help`") from None


def run(args: argparse.Namespace) -> int:
    config = devnet_config(args)
    chain = embedded_network(config, port=args.port or None, prometheus_targets=args.prometheus_targets)
    try:
        return _serve(chain, args)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP (loadgen.engine.signals), at any moment: the nodes stop
        return signals.exit_code()


def _serve(chain, args: argparse.Namespace) -> int:
    with chain:
        with Node(chain.urls[0]) as node:
            info = probe(node)
        print(f"devnet: {chain.describe()}, chain id {info.chain_id}, block gas limit {info.block_gas_limit:,} ({info.client_version})")
        if isinstance(chain, GethNetwork):
            for i, (url, ws, metrics) in enumerate(zip(chain.all_urls, chain.ws_urls, chain.metrics_urls, strict=True)):
                print(f"  node{i}  {url}  {ws}  metrics {metrics}{'  (observer)' if chain.role(i) == 'observer' else ''}")
            print(f"  started in {chain.started_in_s:.1f}s; data in {chain.root}")
        else:
            print(f"  {chain.url}")
        funded = chain.settings.prefunded if isinstance(chain, GethNetwork) else chain.settings.accounts
        source = MnemonicSource("devnet", DEV_MNEMONIC)
        first = ", ".join(f"#{i} {derive_account(source, i).address}" for i in range(2))
        print(f"\naccounts: {funded:,} of the public test mnemonic funded ({first}, …; #0 funds the workers)")
        print("  the public test mnemonic: anyone can spend what it holds, on any chain; never use it for value")
        watch = f" --watch-endpoints {','.join(chain.observer_urls)}" if chain.observer_urls else ""
        print(f"run against it:\n  export LOADGEN_MNEMONIC='{DEV_MNEMONIC}'")
        print(f"  loadgen run configs/quickstart.yaml --endpoints {','.join(chain.urls)}{watch}")
        print("", flush=True)
        if args.smoke:
            return smoke_round(chain.urls[0])
        print("Ctrl-C stops it.", flush=True)
        chain.wait()
        return 0


def smoke_round(url: str, model_length: int = 2_500, chunk_size: int = 1_000) -> int:
    """One round with one pool of three: two workers agree, one does not."""
    w3 = connect(url)
    fees = Fees.legacy(w3.eth.gas_price)
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    coordinator_account, *accounts = (derive_account(source, i).account() for i in range(4))
    started = time.monotonic()
    fl = contracts.deploy(w3, coordinator_account, "FederatedLearning", fees=fees)
    workers = [PoolMember(w3, a, fl, fees) for a in accounts]
    models = [model.random_model(model_length, seed) for seed in (1, 1, 2)]
    coordinator = Coordinator(w3, coordinator_account, fl, fees)
    round_id, (result,) = play_round(coordinator, workers, models, pool_size=3, chunk_size=chunk_size)
    rewards = [fl.functions.rewardOf(w.address).call() for w in workers]
    ok = result.digest == model.model_digest(models[0], chunk_size) and rewards == [1, 1, 0]
    print(
        f"smoke round {round_id}: FederatedLearning at {fl.address}, elected {result.digest.hex()[:16]}… "
        f"with {result.votes}/3 votes, rewards {rewards} in {time.monotonic() - started:.1f}s: {'OK' if ok else 'WRONG'}"
    )
    return 0 if ok else 1

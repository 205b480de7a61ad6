"""A local multi-node network of geth-family nodes: the real, multi-node target under loadgen.

GoQuorum v24.4.1 is a fork of go-ethereum 1.10.3 and keeps its transaction pool, its RPC and
its Berlin-era EVM. ``make setup`` builds go-ethereum at exactly that version (the Go module
proxy refuses GoQuorum itself), which runs clique proof of authority; with a GoQuorum binary on
the machine (``$LOADGEN_GOQUORUM``) the same network runs GoQuorum's QBFT or raft. Every node
runs on loopback with its own data dir, keys, HTTP/WS/metrics/p2p ports and static peers, and
never outlives loadgen.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loadgen.chains.consensus import CONSENSUS, FORKS, Consensus, NodeIdentity, NodePorts
from loadgen.chains.devnet import DEFAULT_CHAIN_ID, DEV_MNEMONIC, free_port
from loadgen.chains.nodeproc import NodeProcess, answers, rpc_call, wait_until
from loadgen.common.errors import UserError
from loadgen.common.jsonfile import write_json
from loadgen.config.accounts import MnemonicSource, derive_account

# A 32 kB chunk transaction takes ~0.56M gas and a block must stay under the eth protocol's
# 10 MiB message cap to reach the other nodes: 100M gas is about 6 MB of chunks per block.
# GoQuorum raises any limit to its own floor of 700M gas, whatever the genesis says.
DEFAULT_GETH_BLOCK_GAS_LIMIT = 100_000_000
DEFAULT_GOQUORUM_BLOCK_GAS_LIMIT = 700_000_000  # params.DefaultMinGasLimit of GoQuorum
PREFUND_WEI = 10**24
PORT_TRIES = 3  # starts on new ports after a node lost one of its own to another process
KEPT_LOGS = Path(tempfile.gettempdir()) / "loadgen-failed-starts"


class PortTaken(UserError):
    """A node could not listen where it was told: another process took the port first."""


# geth 1.10's own txpool defaults (core/tx_pool.go DefaultTxPoolConfig), GoQuorum's too
TXPOOL_DEFAULTS = {"account_slots": 16, "global_slots": 4096, "account_queue": 64, "global_queue": 1024, "lifetime_s": 3 * 3600}


@dataclass(frozen=True)
class TxpoolSettings:
    """geth's --txpool.* flags. Defaults are geth's (and GoQuorum's) own."""

    account_slots: int = TXPOOL_DEFAULTS["account_slots"]
    global_slots: int = TXPOOL_DEFAULTS["global_slots"]
    account_queue: int = TXPOOL_DEFAULTS["account_queue"]
    global_queue: int = TXPOOL_DEFAULTS["global_queue"]
    lifetime_s: int = TXPOOL_DEFAULTS["lifetime_s"]
    # geth treats what its own RPC received as "local": exempt from the limits on that node.
    # True makes every node apply its limits to everything, as the study's network did.
    no_locals: bool = False

    def args(self, gas_price: int) -> list[str]:
        args = [
            # geth raises a price limit below 1 to 1; GoQuorum ignores it on a gas-free network
            "--txpool.pricelimit", str(max(gas_price, 1)),
            "--txpool.accountslots", str(self.account_slots),
            "--txpool.globalslots", str(self.global_slots),
            "--txpool.accountqueue", str(self.account_queue),
            "--txpool.globalqueue", str(self.global_queue),
            "--txpool.lifetime", f"{self.lifetime_s}s",
        ]  # fmt: skip
        return args + (["--txpool.nolocals"] if self.no_locals else [])


@dataclass(frozen=True)
class GethNetworkSettings:
    nodes: int = 4  # the validators (clique: signers), the endpoints runs send to
    # nodes that follow the chain without sealing: endpoints of their own for the watchers' reads
    observers: int = 0
    consensus: str = "clique"  # clique (geth); qbft, ibft or raft (GoQuorum)
    block_time_s: float = 1.0  # clique and QBFT: whole seconds; raft: its minting interval
    block_gas_limit: int = DEFAULT_GETH_BLOCK_GAS_LIMIT
    chain_id: int = DEFAULT_CHAIN_ID
    gas_price: int = 1  # geth's floor for a mining node's pool; GoQuorum takes only 0
    prefunded: int = 1024  # accounts 0..n-1 of the mnemonic, funded in the genesis
    mnemonic: str = DEV_MNEMONIC
    txpool: TxpoolSettings = TxpoolSettings()
    host: str = "127.0.0.1"
    # None: free ports; else node i uses base+i (HTTP), +100 (WS), +200 (metrics), +300 (p2p), +400 (raft)
    base_port: int | None = None
    data_dir: Path | None = None  # None: a temporary directory, removed at stop
    verbosity: int = 2
    extra_args: tuple[str, ...] = ()
    # a Prometheus file_sd file naming the nodes' metrics ports, kept while the network runs
    prometheus_targets: Path | None = None


def genesis(settings: GethNetworkSettings, consensus: Consensus, identities: list[NodeIdentity], funded: list[str]) -> dict:
    """Every fork up to Berlin from block 0 (GoQuorum's EVM), the consensus's own section and
    header fields, the accounts funded."""
    return {
        "config": {"chainId": settings.chain_id, **{f"{f}Block": 0 for f in FORKS}, **consensus.chain_config(settings)},
        "gasLimit": hex(settings.block_gas_limit),
        "alloc": {a.lower().removeprefix("0x"): {"balance": hex(PREFUND_WEI)} for a in funded},
        **consensus.header(settings, identities),
    }


class GethNetwork:
    """N geth-family nodes on loopback, peered statically, all of them sealing, and the observers
    beside them that only follow. A context manager."""

    def __init__(self, settings: GethNetworkSettings | None = None) -> None:
        self.settings = settings or GethNetworkSettings()
        self.consensus = CONSENSUS[self.settings.consensus]()
        self.client = self.consensus.client
        if self.settings.observers and not self.consensus.observable:
            raise UserError(f"a {self.consensus.name} network here has no observer nodes (a raft learner must be voted in): use 0")
        total = self.settings.nodes + self.settings.observers
        self.identities = [NodeIdentity(i, self.settings.chain_id) for i in range(total)]
        self.ports: list[NodePorts] = []
        self.root: Path | None = None
        self._temporary = False
        self._nodes: list[NodeProcess] = []
        self.started_in_s: float | None = None
        self.binary: Path | None = None

    # addresses ------------------------------------------------------------------------------
    @property
    def all_urls(self) -> list[str]:
        return [f"http://{self.settings.host}:{p.http}" for p in self.ports]

    @property
    def urls(self) -> list[str]:
        """The sealing nodes': where a run sends."""
        return self.all_urls[: self.settings.nodes]

    @property
    def observer_urls(self) -> list[str]:
        return self.all_urls[self.settings.nodes :]

    @property
    def ws_urls(self) -> list[str]:
        return [f"ws://{self.settings.host}:{p.http}" for p in self.ports]

    def role(self, i: int) -> str:
        return "validator" if i < self.settings.nodes else "observer"

    @property
    def metrics_urls(self) -> list[str]:
        return [f"http://{self.settings.host}:{p.metrics}/debug/metrics/prometheus" for p in self.ports]

    @property
    def pids(self) -> list[int]:
        return [n.pid for n in self._nodes if n.pid is not None]

    @property
    def running(self) -> bool:
        return bool(self._nodes) and all(n.alive for n in self._nodes)

    def describe(self) -> str:
        s = self.settings
        how = self.consensus.describe(s)
        observers = f" and {s.observers} observer{'s' * (s.observers > 1)}" if s.observers else ""
        return f"embedded {self.client} network: {s.nodes} {self.consensus.name} nodes{observers}, {how}, gas price {s.gas_price} wei"

    def manifest(self) -> dict:
        """What the run's manifest records of the network (no key: the signers' are throw-away, still not written)."""
        s = self.settings
        return {
            "client": self.client,
            "binary": str(self.binary) if self.binary else None,
            "nodes": s.nodes,
            "observers": s.observers,
            "consensus": self.consensus.name,
            "block_time_s": s.block_time_s,
            "block_gas_limit": s.block_gas_limit,
            "gas_price": s.gas_price,
            "txpool": asdict(s.txpool),
            "metrics": self.metrics_urls,
            "started_in_s": self.started_in_s,
        }

    # life cycle -----------------------------------------------------------------------------
    # geth waits 35 s (p2p dialHistoryExpiration) before it dials a static peer again whose first
    # dial failed because that node was not listening yet: a start must outlast one such redial
    def start(self, timeout_s: float = 60.0) -> GethNetwork:
        self.binary = binary = self.consensus.binary()
        began = time.monotonic()
        s = self.settings
        if s.data_dir is None:
            self.root = Path(tempfile.mkdtemp(prefix="loadgen-geth-"))
            self._temporary = True
        else:
            self.root = s.data_dir
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            for attempt in range(1, PORT_TRIES + 1):
                taken: set[int] = set()
                self.ports = [self._ports(i, taken) for i in range(len(self.identities))]
                self._write_genesis(binary)
                for i in range(len(self.identities)):
                    self._nodes.append(NodeProcess([str(binary), *self._args(i)], self.root / f"node{i}.log", env=self._env()))
                try:
                    self._wait_ready(timeout_s - (time.monotonic() - began))
                    break
                except PortTaken as e:
                    # another process took a port between its choice and the node's start: new ports
                    self._stop_nodes()
                    if s.base_port is not None:
                        raise PortTaken(f"a port the nodes were given is taken (`--port 0` picks free ones): {e}") from None
                    if attempt == PORT_TRIES:
                        raise
        except BaseException as e:
            self.stop(failed=isinstance(e, UserError))
            raise
        self.started_in_s = time.monotonic() - began
        if s.prometheus_targets is not None:
            write_json(s.prometheus_targets, prometheus_targets(self))  # Prometheus never reads half a file
        return self

    def _ports(self, i: int, taken: set[int]) -> NodePorts:
        base = self.settings.base_port
        if base is not None:
            return NodePorts(base + i, base + 200 + i, base + 300 + i, base + 400 + i)  # fits 100 nodes
        host = self.settings.host
        return NodePorts(free_port(host, taken), free_port(host, taken), free_port(host, taken), free_port(host, taken))

    def _env(self) -> dict[str, str]:
        return dict(os.environ) | self.consensus.env()

    def _funded(self) -> list[str]:
        source = MnemonicSource("devnet", self.settings.mnemonic)
        return [derive_account(source, i).address for i in range(self.settings.prefunded)]

    def _write_genesis(self, binary: Path) -> None:
        assert self.root is not None
        genesis_path = self.root / "genesis.json"
        if not genesis_path.exists():
            doc = genesis(self.settings, self.consensus, self.identities[: self.settings.nodes], self._funded())
            genesis_path.write_text(json.dumps(doc, indent=1))
        raft = self.consensus.name == "raft"
        # the same list, in the same order, on every node: raft numbers its members by it
        static = [n.enode(self.settings.host, p, raft) for n, p in zip(self.identities, self.ports, strict=True)]
        for node in self.identities:
            d = self.root / f"node{node.index}"
            (d / "geth").mkdir(parents=True, exist_ok=True)
            (d / "nodekey").write_text(node.node_key.hex())
            (d / "geth" / "static-nodes.json").write_text(json.dumps(static))
            self.consensus.prepare(d, node)
            if not (d / "geth" / "chaindata").exists():
                log = self.root / f"node{node.index}.log"
                init = NodeProcess([str(binary), "--datadir", str(d), "init", str(genesis_path)], log, env=self._env())
                code = init.wait()
                tail = init.log_tail()
                init.stop()
                if code != 0:
                    raise UserError(f"{self.client} init failed for node {node.index}: {tail}")

    def _args(self, i: int) -> list[str]:
        s, p, node = self.settings, self.ports[i], self.identities[i]
        assert self.root is not None
        d = self.root / f"node{i}"
        args = [
            "--datadir", str(d),
            "--networkid", str(s.chain_id),
            "--syncmode", "full",
            "--nodiscover", "--nat", "none", "--ipcdisable",
            # geth 1.10 listens for peers on every address: only the network's own may connect
            "--port", str(p.p2p), "--netrestrict", f"{s.host}/32",
            "--nodekey", str(d / "nodekey"),
            "--http", "--http.addr", s.host, "--http.port", str(p.http),
            "--http.api", self.consensus.apis, "--http.vhosts", "*",
            "--ws", "--ws.addr", s.host, "--ws.port", str(p.http), "--ws.api", "eth,net,web3,txpool", "--ws.origins", "*",
            # the block watcher reads a block's receipts in one query: eth_getTransactionReceipt
            # decodes the whole block for each transaction on 1.10 (actors/watcher.py)
            "--graphql", "--graphql.vhosts", "*",
            "--rpc.txfeecap", "0",
            "--metrics", "--metrics.addr", s.host, "--metrics.port", str(p.metrics),
            "--verbosity", str(s.verbosity),
        ]  # fmt: skip
        sealing = self.consensus.args(s, node, p, d) if i < s.nodes else self.consensus.observer_args()
        return args + sealing + s.txpool.args(s.gas_price) + list(s.extra_args)

    def _wait_ready(self, timeout_s: float) -> None:
        """Ready = every node answers with the chain id, has all its peers, and sees blocks
        advance past the head it had when it came up."""
        deadline = time.monotonic() + max(timeout_s, 1.0)

        def alive() -> bool:
            return self.running

        want_peers = len(self.identities) - 1

        def peered() -> bool:
            return all(int(answers(u, "net_peerCount") or "0x0", 16) >= want_peers for u in self.all_urls)

        if not wait_until(lambda: all(answers(u) for u in self.all_urls), deadline - time.monotonic(), 0.1, alive):
            self._fail("did not answer on its RPC port", alive())
        if not wait_until(peered, deadline - time.monotonic(), 0.1, alive):
            self._fail(f"did not connect to its {want_peers} peers", alive())
        self.consensus.after_peered(self.urls)
        heads = [int(rpc_call(u, "eth_blockNumber"), 16) for u in self.urls]
        if not wait_until(lambda: self.consensus.producing(self.urls, heads), deadline - time.monotonic(), 0.1, alive):
            # what each node had then: a stall (no head moved) reads apart from a split (heads
            # moving apart, peers lost)
            state = ", ".join(
                f"node {i} head {answers(u, 'eth_blockNumber')} peers {answers(u, 'net_peerCount')}" for i, u in enumerate(self.urls)
            )
            self._fail(f"{self.consensus.not_producing} ({state})", alive())

    def _fail(self, what: str, alive: bool) -> None:
        culprit = next((i for i, n in enumerate(self._nodes) if not n.alive), 0)
        cause = "exited" if not alive else f"{what} within the time allowed"
        tail = self._nodes[culprit].log_tail(300)
        # kept past the network (a temporary data dir goes): see stop(failed=True)
        log = KEPT_LOGS / f"{self.root.name if self.root else 'network'}-node{culprit}.log"
        error = PortTaken if "address already in use" in tail else UserError
        raise error(f"{self.client} node {culprit} of the network {cause} (log {log}): {tail}")

    def _stop_nodes(self) -> None:
        for node in self._nodes:
            node.signal_stop()  # all at once: each takes about a second to shut down
        for node in self._nodes:
            node.stop()
        self._nodes = []

    def stop(self, failed: bool = False) -> None:
        """Stops the nodes; a temporary data dir goes, but after a failed start the nodes' logs
        are kept under ``KEPT_LOGS``, where the error said."""
        self._stop_nodes()
        if self.settings.prometheus_targets is not None:
            self.settings.prometheus_targets.unlink(missing_ok=True)
        if self._temporary and self.root is not None:
            if failed:
                KEPT_LOGS.mkdir(parents=True, exist_ok=True)
                for log in self.root.glob("node*.log"):
                    shutil.copyfile(log, KEPT_LOGS / f"{self.root.name}-{log.name}")
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def wait(self) -> int:
        """Blocks until a node exits on its own (the `loadgen devnet` foreground mode): 1."""
        while self.running:
            time.sleep(0.5)
        return 1

    def __enter__(self) -> GethNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prometheus_targets(network: GethNetwork) -> list[dict]:
    """The nodes as a Prometheus file_sd target list (one entry per node, labelled)."""
    return [
        {
            "targets": [f"{network.settings.host}:{p.metrics}"],
            "labels": {
                "node": f"node{i}",
                "endpoint": url,
                "client": network.client,
                "consensus": network.consensus.name,
                "role": network.role(i),
            },
        }
        for i, (p, url) in enumerate(zip(network.ports, network.all_urls, strict=True))
    ]

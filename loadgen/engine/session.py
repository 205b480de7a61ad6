"""The chain a run (or a series of runs) talks to: the configured endpoints or an embedded
network, probed once, with its fees resolved, its keys' origin, funding and transaction pools.

A search or a sweep opens one session for all its trials (``shared``), so the embedded network
outlives them; a single run opens its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.chains.consensus import CLIENT_CONSENSUS, CONSENSUS
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.chains.fees import Fees, resolve_fees
from loadgen.chains.funding import Funding, fund
from loadgen.chains.gethnet import GethNetwork, GethNetworkSettings
from loadgen.chains.node import Node
from loadgen.chains.probe import ChainInfo, probe
from loadgen.common.errors import ConfigError
from loadgen.common.paths import REPO_ROOT
from loadgen.config.accounts import Key, MnemonicSource, derive_account, mnemonic_source
from loadgen.config.schema import CLIQUE_CONFIRMATIONS, ChainConfig, DevnetConfig, Experiment

if TYPE_CHECKING:
    from web3 import Web3


def targets_file(name: str) -> Path | None:
    """Where an embedded network names its nodes for grafana/prometheus/prometheus.yml, when
    loadgen runs from its repository (the file goes when the network stops)."""
    folder = REPO_ROOT / "grafana" / "prometheus"
    return folder / "targets" / f"{name}.json" if folder.is_dir() else None


class ChainSession:
    def __init__(
        self, chain: ChainConfig, *, name: str, mnemonic: MnemonicSource | None = None, on_event: Callable[[str], None] | None = None
    ) -> None:
        self.chain = chain
        self.name = name
        self.on_event = on_event or (lambda m: None)
        self._mnemonic = mnemonic
        self._stack = contextlib.ExitStack()
        self.endpoints: list[str] = []
        self.watch_endpoints: list[str] = []  # where the watchers read; empty: the endpoints
        self.devnet: dict | None = None  # the embedded network's manifest, when there is one
        self._pools: dict[str, Node] = {}
        self._no_txpool: set[str] = set()

    def __enter__(self) -> ChainSession:
        try:
            self.endpoints = list(self.chain.endpoints)
            self.watch_endpoints = list(self.chain.watch_endpoints)
            if not self.endpoints:
                self.on_event(f"starting the {self.chain.devnet.client} devnet…")
                node = embedded_network(self.chain.devnet, prometheus_targets=targets_file(self.name))
                self._stack.enter_context(node)  # starts it (both kinds' __enter__ return the node itself)
                self.endpoints = node.urls
                self.watch_endpoints = self.watch_endpoints or node.observer_urls
                self.devnet = node.manifest()
                self.on_event(f"{node.describe()}: {', '.join(self.endpoints)}")
                if node.observer_urls:
                    self.on_event(f"watching from {', '.join(node.observer_urls)}")
            self.node = Node(self.endpoints)  # the first endpoint, and the next ones when it dies
            self.info: ChainInfo = probe(self.node)
            self._check()
            self.fees: Fees = resolve_fees(self.node, self.chain.tx_type, self.chain.gas_price, self.chain.max_fee, self.chain.priority_fee)
            self.source = self._mnemonic or mnemonic_source(DEV_MNEMONIC if self.devnet is not None else None)
            self.coordinator: Key = derive_account(self.source, 0)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for node in (getattr(self, "node", None), *self._pools.values()):
            if node is not None:
                node.close()
        self._stack.close()

    @cached_property
    def w3(self) -> Web3:
        """web3 on the same endpoints, for workloads with contracts (imported only for them)."""
        from loadgen.chains.chain import connect

        return connect(self.endpoints)

    def _check(self) -> None:
        if self.chain.chain_id is not None and self.chain.chain_id != self.info.chain_id:
            raise ConfigError(
                "chain.chain_id", f"is {self.chain.chain_id} but the node says {self.info.chain_id}", "remove it or fix the endpoints"
            )
        for url in self.watch_endpoints:
            try:
                with Node(url, timeout_s=5) as node:
                    chain_id = node.chain_id()
            except Exception as e:  # any failure to answer: the watchers could not read there
                raise ConfigError("chain.watch_endpoints", f"{url} does not answer ({e})", "fix the URL or leave it out") from None
            if chain_id != self.info.chain_id:
                other = f"{url} is on chain {chain_id}, the endpoints on {self.info.chain_id}"
                raise ConfigError("chain.watch_endpoints", other, "name nodes of the same chain")

    @property
    def confirmations(self) -> int:
        """Blocks on top of a block before the watchers read it: what the config says, else 0
        on chains with final blocks (BFT, raft, Anvil) and more on a clique network."""
        if self.chain.confirmations is not None:
            return self.chain.confirmations
        return CLIQUE_CONFIRMATIONS if self.info.clique else 0

    @property
    def embedded(self) -> bool:
        return self.devnet is not None

    def fund(self, addresses: list[str], wei_each: int) -> Funding:
        return fund(self.node, self.coordinator, addresses, wei_each, self.fees)

    def txpools(self) -> dict[str, tuple[int, int]]:
        """(pending, queued) per endpoint, for nodes that have txpool_status."""
        pools = {}
        for url in self.endpoints:
            if url in self._no_txpool:
                continue
            try:
                if url not in self._pools:
                    self._pools[url] = Node(url, timeout_s=2)
                result = self._pools[url].call("txpool_status")
                pools[url] = (int(result["pending"], 16), int(result["queued"], 16))
            except Exception:  # any failure: this node has no txpool_status
                self._no_txpool.add(url)
        return pools

    def queued(self) -> int:
        return sum(q for _, q in self.txpools().values())

    def wait_for_empty_pools(self, stranded: int | None = 0, timeout_s: float = 30.0) -> int:
        """Nothing new is sent while a node still holds transactions of the last phase, except
        ``stranded`` queued ones: behind a nonce that was given up (in this phase or before it,
        by this run or an earlier one on the same chain), they never leave. ``None``: however
        many are queued (a stopped run's workers leave gaps nobody counted). Answers how many
        beyond those the pools still held when the wait ended."""
        deadline = time.time() + timeout_s
        pools: dict[str, tuple[int, int]] = {}
        pending = queued = 0
        while time.time() < deadline:
            pools = self.txpools()
            pending, queued = sum(p for p, _ in pools.values()), sum(q for _, q in pools.values())
            if pending == 0 and (stranded is None or queued <= stranded):
                return 0
            time.sleep(0.2)
        self.on_event(f"the nodes' pools still hold transactions after {timeout_s:g}s: {pools}")
        return max(pending + queued - (queued if stranded is None else stranded), 0)


def embedded_network(devnet: DevnetConfig, port: int | None = None, prometheus_targets: Path | None = None) -> Devnet | GethNetwork:
    """The chain these settings describe, not started yet. ``port``: Anvil's RPC port, or the
    first node's (the others follow); None picks free ports."""
    if devnet.client == "anvil":
        return Devnet(
            DevnetSettings(
                port=port,
                block_time_s=1.0 if devnet.block_time_s is None else devnet.block_time_s,
                block_gas_limit=devnet.block_gas,
                chain_id=devnet.chain_id,
                gas_price=devnet.gas_price or 0,
            )
        )
    consensus = CONSENSUS[devnet.consensus or CLIENT_CONSENSUS[devnet.client][0]]
    return GethNetwork(
        GethNetworkSettings(
            nodes=devnet.nodes,
            observers=devnet.observers,
            consensus=consensus.name,
            block_time_s=consensus.default_block_time_s if devnet.block_time_s is None else devnet.block_time_s,
            block_gas_limit=devnet.block_gas,
            chain_id=devnet.chain_id,
            gas_price=consensus.gas_price if devnet.gas_price is None else devnet.gas_price,
            txpool=devnet.txpool.settings(),
            data_dir=Path(devnet.data_dir) if devnet.data_dir else None,
            base_port=port,
            prometheus_targets=prometheus_targets,
        )
    )


@contextlib.contextmanager
def shared(experiment: Experiment, name: str) -> Iterator[tuple[Experiment, MnemonicSource | None]]:
    """For a series of runs (a search, a sweep): the experiment pointed at one embedded network
    that outlives them all, when it names no endpoints, and that network's mnemonic."""
    if experiment.chain.endpoints:
        yield experiment, None
        return
    with embedded_network(experiment.chain.devnet, prometheus_targets=targets_file(name)) as node:
        watch = experiment.chain.watch_endpoints or node.observer_urls
        pointed = experiment.with_overrides({"chain.endpoints": node.urls, "chain.watch_endpoints": watch})
        yield pointed, MnemonicSource("devnet", DEV_MNEMONIC)

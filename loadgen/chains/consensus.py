"""How the nodes of a local geth-family network agree on blocks: one class per consensus.

- ``clique``: upstream geth's proof of authority; every node is a signer with its own key.
- ``qbft``: GoQuorum's Byzantine-fault-tolerant consensus; every node is a validator (its node key).
- ``ibft``: QBFT's predecessor, the study's consensus; validators as in QBFT, an older header format.
- ``raft``: GoQuorum's crash-fault-tolerant consensus; one leader mints, only when there are
  transactions, and stamps blocks in nanoseconds.

Each one gives its client binary, its part of the genesis, its node flags and when a network
that runs it is producing blocks. Formats are GoQuorum's own (``core/types/istanbul.go``,
``params/config.go`` of v24.4.1) and geth 1.10.3's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from coincurve import PrivateKey

from loadgen.chains.clients import geth_binary, goquorum_binary
from loadgen.chains.nodeproc import answers, rpc_call
from loadgen.common.address import address_of

if TYPE_CHECKING:
    from loadgen.chains.gethnet import GethNetworkSettings

FORKS = ["homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople", "petersburg", "istanbul", "muirGlacier", "berlin"]
# The istanbul engines accept only this mixHash ("Istanbul practical byzantine fault tolerance").
ISTANBUL_DIGEST = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
SIGNER_PASSWORD = "loadgen-devnet"  # guards only a local network's throw-away signer keys
# GoQuorum's txnSizeLimit is in KB, 32 to 128: the largest, so that Fig. 1 can go past 64 KB.
TXN_SIZE_LIMIT_KB = 128


def keystore_json(key: bytes, password: str) -> dict:
    """A v3 keystore file geth can unlock."""
    from eth_account import Account  # a third of a CPU-second to import: only where a network is made

    # scrypt n=2: geth decrypts with the file's own parameters, so unlocking is instant
    encrypted = Account.encrypt(key, password, kdf="scrypt", iterations=2)
    # eth-keyfile writes the IV as an integer's bytes, so one time in 256 it loses a leading zero
    # byte, and geth (Go >= 1.24's AES-CTR) panics on the 15-byte IV as it unlocks the signer
    params = encrypted["crypto"]["cipherparams"]
    params["iv"] = params["iv"].zfill(32)
    return encrypted


@dataclass(frozen=True)
class NodePorts:
    http: int  # JSON-RPC over HTTP and WebSocket both: geth serves the two on one port when told the same
    metrics: int
    p2p: int
    raft: int


@dataclass(frozen=True)
class NodeIdentity:
    """A node's throw-away keys, derived from the network's chain id and the node's index so that
    a kept --data-dir starts again with the same peers, signers and validators."""

    index: int
    chain_id: int

    def _key(self, purpose: str) -> bytes:
        return sha256(f"loadgen-devnet/{self.chain_id}/{purpose}/{self.index}".encode()).digest()

    @cached_property
    def node_key(self) -> bytes:
        return self._key("p2p")

    @property
    def node_address(self) -> str:
        """The address of the node key: a QBFT validator signs with it."""
        return address_of(self.node_key)

    @cached_property
    def signer_key(self) -> bytes:
        return self._key("signer")

    @property
    def signer(self) -> str:
        """The clique signer's address (an account unlocked on the node)."""
        return address_of(self.signer_key)

    def enode(self, host: str, ports: NodePorts, raft: bool = False) -> str:
        query = f"?discport=0&raftport={ports.raft}" if raft else "?discport=0"
        public = PrivateKey(self.node_key).public_key.format(compressed=False)[1:]
        return f"enode://{public.hex()}@{host}:{ports.p2p}{query}"


class Consensus:
    name: ClassVar[str]
    client: ClassVar[str]
    apis: ClassVar[str]
    # the gas price a node of this client takes: geth's pools refuse less than 1 wei, GoQuorum
    # refuses anything but 0 ("Gas price not 0") on a gas-free network
    gas_price: ClassVar[int]
    default_block_time_s: ClassVar[float] = 1.0
    not_producing: ClassVar[str] = "made no new block"  # how a start that never got going is told
    observable: ClassVar[bool] = True  # a node outside the sealing set can follow the chain

    def binary(self) -> Path:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def chain_config(self, settings: GethNetworkSettings) -> dict:
        raise NotImplementedError

    def header(self, settings: GethNetworkSettings, identities: list[NodeIdentity]) -> dict:
        """The genesis header fields this consensus sets: difficulty, extraData, mixHash."""
        raise NotImplementedError

    def prepare(self, datadir: Path, identity: NodeIdentity) -> None:
        """Files a node needs beyond its genesis, key and peers."""

    def args(self, settings: GethNetworkSettings, identity: NodeIdentity, ports: NodePorts, datadir: Path) -> list[str]:
        raise NotImplementedError

    def observer_args(self) -> list[str]:
        """Flags of a node that follows the chain without sealing: not a signer or validator."""
        return []

    def after_peered(self, urls: list[str]) -> None:
        """Sealing starts once every node has its peers: a node that seals alone first makes a
        fork of its own (clique), or times its first round out (QBFT, 10 s), and the chains only
        meet at the next sync cycle, 10 s later."""
        for url in urls:
            rpc_call(url, "miner_start", [1], timeout_s=5)

    def producing(self, urls: list[str], heads: list[int]) -> bool:
        """True once the network makes blocks: by default, every node's head passed ``heads``."""
        return all(int(rpc_call(u, "eth_blockNumber"), 16) > h for u, h in zip(urls, heads, strict=True))

    def describe(self, settings: GethNetworkSettings) -> str:
        return f"block every {settings.block_time_s:g}s"


class Clique(Consensus):
    name = "clique"
    client = "geth"
    apis = "eth,net,web3,txpool,clique,admin,debug,miner"
    gas_price = 1

    def binary(self) -> Path:
        return geth_binary()

    def chain_config(self, settings: GethNetworkSettings) -> dict:
        return {"clique": {"period": int(settings.block_time_s), "epoch": 30000}}

    def header(self, settings: GethNetworkSettings, identities: list[NodeIdentity]) -> dict:
        # 32 bytes of vanity, the signers sorted, 65 bytes for the seal
        signers = sorted((i.signer.lower().removeprefix("0x") for i in identities), key=str)
        return {"difficulty": "0x1", "extraData": "0x" + "00" * 32 + "".join(signers) + "00" * 65}

    def prepare(self, datadir: Path, identity: NodeIdentity) -> None:
        (datadir / "password").write_text(SIGNER_PASSWORD)
        keystore = datadir / "keystore"
        keystore.mkdir(exist_ok=True)
        (keystore / "signer.json").write_text(json.dumps(keystore_json(identity.signer_key, SIGNER_PASSWORD)))

    def args(self, settings: GethNetworkSettings, identity: NodeIdentity, ports: NodePorts, datadir: Path) -> list[str]:
        return [
            "--miner.etherbase", identity.signer, "--unlock", identity.signer,
            "--password", str(datadir / "password"), "--allow-insecure-unlock",
            "--miner.gasprice", str(settings.gas_price),
            # gastarget = gaslimit = the genesis limit: geth would otherwise walk it toward its own default
            "--miner.gastarget", str(settings.block_gas_limit), "--miner.gaslimit", str(settings.block_gas_limit),
        ]  # fmt: skip


class _GoQuorum(Consensus):
    client = "goquorum"
    gas_price = 0

    def binary(self) -> Path:
        return goquorum_binary()

    def env(self) -> dict[str, str]:
        return {"PRIVATE_CONFIG": "ignore"}  # no private transaction manager (Tessera)

    def quorum_config(self) -> dict:
        return {"isQuorum": True, "txnSizeLimit": TXN_SIZE_LIMIT_KB, "maxCodeSize": 0}


class _Istanbul(_GoQuorum):
    """GoQuorum's Byzantine-fault-tolerant engines (``consensus/istanbul``): every node is a
    validator signing with its node key; the genesis names them and the block period."""

    apis = "eth,net,web3,txpool,istanbul,admin,debug,miner"
    request_timeout_s = 10

    def chain_config(self, settings: GethNetworkSettings) -> dict:
        bft = {
            "epochlength": 30000,
            "blockperiodseconds": int(settings.block_time_s),
            "requesttimeoutseconds": self.request_timeout_s,
            "policy": 0,
            "ceil2Nby3Block": 0,
        }
        return self.quorum_config() | {self.name: bft}

    def args(self, settings: GethNetworkSettings, identity: NodeIdentity, ports: NodePorts, datadir: Path) -> list[str]:
        return ["--miner.threads", "1", "--emitcheckpoints"]


class Qbft(_Istanbul):
    name = "qbft"

    def header(self, settings: GethNetworkSettings, identities: list[NodeIdentity]) -> dict:
        # QBFT's whole extraData is RLP: [vanity, validators, vote, round, committed seals]
        validators = [bytes.fromhex(i.node_address[2:]) for i in identities]
        import rlp  # with eth-utils, 75 ms to import: only where a network is made

        extra = rlp.encode([b"\x00" * 32, validators, [], 0, []])
        return {"difficulty": "0x1", "mixHash": ISTANBUL_DIGEST, "extraData": "0x" + extra.hex()}


class Ibft(_Istanbul):
    """The study's consensus: IBFT, QBFT's predecessor (an ``ibft`` genesis section keeps the
    IBFT engine from block 0: no ``testQBFTBlock``)."""

    name = "ibft"

    def header(self, settings: GethNetworkSettings, identities: list[NodeIdentity]) -> dict:
        # IBFT's extraData: 32 bytes of vanity, then RLP [validators, seal, committed seals]
        validators = [bytes.fromhex(i.node_address[2:]) for i in identities]
        import rlp

        extra = b"\x00" * 32 + rlp.encode([validators, b"", []])
        return {"difficulty": "0x1", "mixHash": ISTANBUL_DIGEST, "extraData": "0x" + extra.hex()}


class Raft(_GoQuorum):
    name = "raft"
    apis = "eth,net,web3,txpool,raft,admin,debug"
    default_block_time_s = 0.05
    not_producing = "elected no raft leader"
    observable = False  # every node of the static list is a voting member

    def chain_config(self, settings: GethNetworkSettings) -> dict:
        return self.quorum_config()

    def header(self, settings: GethNetworkSettings, identities: list[NodeIdentity]) -> dict:
        return {"difficulty": "0x0", "extraData": "0x", "mixHash": "0x" + "00" * 32}

    def args(self, settings: GethNetworkSettings, identity: NodeIdentity, ports: NodePorts, datadir: Path) -> list[str]:
        block_ms = max(round(settings.block_time_s * 1000), 1)
        return ["--raft", "--raftport", str(ports.raft), "--raftblocktime", str(block_ms), "--emitcheckpoints"]

    def after_peered(self, urls: list[str]) -> None:
        """Raft's leader mints on its own once elected."""

    def producing(self, urls: list[str], heads: list[int]) -> bool:
        # raft mints only when there are transactions: ready = one leader elected
        return [answers(u, "raft_role") for u in urls].count("minter") == 1

    def describe(self, settings: GethNetworkSettings) -> str:
        return f"blocks minted every {settings.block_time_s * 1000:g} ms while there are transactions"


CONSENSUS: dict[str, type[Consensus]] = {c.name: c for c in (Clique, Qbft, Ibft, Raft)}
CLIENT_CONSENSUS = {"geth": ("clique",), "goquorum": ("qbft", "ibft", "raft")}

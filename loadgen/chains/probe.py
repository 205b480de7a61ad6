"""What the driver learns of a chain before a run: its id, fees, client, block gas limit and
whether its recent blocks may still change (clique)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loadgen.chains.node import Node, Unreachable
from loadgen.common.errors import UserError


@dataclass(frozen=True)
class ChainInfo:
    chain_id: int
    gas_price: int
    client_version: str
    block_gas_limit: int
    head: int
    # a clique network (its signers seal in turn, and fork when one is late): blocks near the
    # head may still be replaced
    clique: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def probe(node: Node) -> ChainInfo:
    try:
        block = node.block()
        return ChainInfo(
            chain_id=node.chain_id(),
            gas_price=node.gas_price(),
            client_version=node.call("web3_clientVersion"),
            block_gas_limit=int(block["gasLimit"], 16),
            head=int(block["number"], 16),
            clique=int(block.get("difficulty") or "0x0", 16) in (1, 2) and int(block.get("miner") or "0x0", 16) == 0,
        )
    except Unreachable:
        raise UserError(f"no answer from {node.url} (connection refused): is the node running, and is the URL right?") from None
    except TimeoutError:
        raise UserError(f"no answer from {node.url} in time: the node is up but does not answer (overloaded or stalled?)") from None
    except Exception as e:  # any other failure here means "this is not a usable node"
        raise UserError(f"cannot talk to the node at {node.url}: {e}") from None

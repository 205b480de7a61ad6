"""Reading a block and its transactions' receipts, the cheapest way the node offers (see
actors/watcher.py's docstring): ``eth_getBlockReceipts``; else one GraphQL query a block (geth
and GoQuorum with ``--graphql``); else the receipts one transaction at a time, in concurrent
batches. What a read block says: its row and its inclusions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from actors.rpc import RpcClient, RpcError
from loadgen.chains.blocktime import timestamp_seconds

RECEIPT_BATCH = 200  # receipts a request: geth refuses batches of over 1,000 calls or 25 MB of answer
RECEIPT_REQUESTS_AT_ONCE = 4  # receipt batches in flight: a node answers a batch on one core
BLOCK_QUERY = "{ block(number: %d) { hash parent { hash } timestamp gasUsed gasLimit transactions { hash status gasUsed gasPrice } } }"


def graphql_url(url: str) -> str:
    """Where geth-derived nodes serve GraphQL: /graphql on the HTTP-RPC port."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/graphql", "", ""))


def _number(value: object) -> int:
    """GraphQL's Long is a JSON number on geth 1.10 and a hex string on later ones; BigInt is hex."""
    if isinstance(value, str):
        return int(value, 16)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"not a number: {value!r:.40}")


@dataclass(frozen=True, slots=True)
class Inclusion:
    tx_hash: bytes
    block_number: int
    t_observed: float
    status: int
    gas_used: int
    block_timestamp_s: float | None  # None: read from a receipt alone
    effective_gas_price: int | None  # what the sender paid per gas (None: the node does not say)

    @classmethod
    def of(cls, receipt: object, tx_hash: str, t_observed: float, block_timestamp_s: float | None) -> Inclusion:
        """The inclusion a receipt of ``tx_hash`` says; a receipt of another transaction, or one
        without a number, status or gas where they belong, is an answer not to be believed."""
        try:
            assert isinstance(receipt, dict)
            assert str(receipt["transactionHash"]).lower() == tx_hash.lower()
            price = receipt.get("effectiveGasPrice")
            return cls(
                bytes.fromhex(tx_hash[2:]), int(receipt["blockNumber"], 16), t_observed, int(receipt["status"], 16),
                int(receipt["gasUsed"], 16), block_timestamp_s, int(price, 16) if price else None,
            )  # fmt: skip
        except (AssertionError, KeyError, TypeError, ValueError):
            raise RpcError("rpc", f"not a receipt of {tx_hash}: {receipt!r:.200}", unhealthy=True) from None


@dataclass(frozen=True, slots=True)
class BlockRow:
    number: int
    timestamp_s: float
    tx_count: int
    gas_used: int
    gas_limit: int
    t_observed: float


@dataclass(frozen=True, slots=True)
class BlockRead:
    """A block as read: its row, the inclusions it holds, its hash and its parent's."""

    row: BlockRow
    inclusions: list[Inclusion]
    hash: str
    parent: str


class BlockReader:
    """One endpoint's way of reading blocks, chosen once (``choose``), asked again after a failover
    (a new reader)."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc
        self.receipts_via: str | None = None  # "block", "graphql" or "hash": chosen by choose()
        self._graphql: RpcClient | None = None
        self._receipt_requests = asyncio.Semaphore(RECEIPT_REQUESTS_AT_ONCE)

    async def close(self) -> None:
        if self._graphql is not None:
            await self._graphql.close()
            self._graphql = None

    async def choose(self) -> None:
        """How this endpoint's blocks are read (see the module's docstring); asked again after a
        failover. An endpoint that does not answer at all fails the round, to be asked later."""
        try:
            answer = await self.rpc.call("eth_getBlockReceipts", ["latest"])
            if isinstance(answer, list):
                self.receipts_via = "block"
                return
        except RpcError as e:
            if e.unhealthy:
                raise
        graphql = RpcClient(graphql_url(self.rpc.url))
        try:
            await graphql.query("{ block { number } }")
        except RpcError:
            await graphql.close()
            self.receipts_via = "hash"
            return
        self._graphql, self.receipts_via = graphql, "graphql"

    async def read(self, number: int, seen: float) -> BlockRead:
        if self._graphql is not None:
            return await self._read_graphql(number, seen)
        block = await self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if block is None:  # the node answered the number before it could serve the block
            raise RpcError("rpc", f"block {number} not served yet")
        try:
            hashes = [str(h) for h in block["transactions"]]
            ts = timestamp_seconds(int(block["timestamp"], 16))
            row = BlockRow(number, ts, len(hashes), int(block["gasUsed"], 16), int(block["gasLimit"], 16), seen)
            own, parent = str(block["hash"]), str(block["parentHash"])
        except (KeyError, TypeError, ValueError):
            raise RpcError("rpc", f"not a block: {block!r:.200}", unhealthy=True) from None
        receipts = await self._receipts(number, hashes) if hashes else []
        return BlockRead(row, [Inclusion.of(r, h, seen, ts) for r, h in zip(receipts, hashes, strict=True)], own, parent)

    async def _read_graphql(self, number: int, seen: float) -> BlockRead:
        assert self._graphql is not None, "chosen by choose()"
        block = (await self._graphql.query(BLOCK_QUERY % number)).get("block")
        if block is None:  # the node answered the number before it could serve the block
            raise RpcError("rpc", f"block {number} not served yet")
        try:
            ts = timestamp_seconds(_number(block["timestamp"]))
            txs = block["transactions"] or []
            row = BlockRow(number, ts, len(txs), _number(block["gasUsed"]), _number(block["gasLimit"]), seen)
            inclusions = [
                Inclusion(
                    bytes.fromhex(t["hash"][2:]), number, seen, _number(t["status"]), _number(t["gasUsed"]), ts, _number(t["gasPrice"])
                )
                for t in txs
            ]
            own, parent = str(block["hash"]), str(block["parent"]["hash"])
        except (KeyError, TypeError, ValueError):
            raise RpcError("rpc", f"not a block: {block!r:.200}", unhealthy=True) from None
        return BlockRead(row, inclusions, own, parent)

    async def _receipts(self, number: int, hashes: list[str]) -> list[object]:
        """The block's receipts in the order of its transactions."""
        if self.receipts_via == "block":
            try:
                answer = await self.rpc.call("eth_getBlockReceipts", [hex(number)])
                listed = answer if isinstance(answer, list) else []
                by_hash = {str(r.get("transactionHash")).lower(): r for r in listed if isinstance(r, dict)}
                if all(h.lower() in by_hash for h in hashes):
                    return [by_hash[h.lower()] for h in hashes]
            except RpcError as e:
                if e.kind != "rpc" or e.unhealthy:
                    raise
            # answered this block amiss: asked again, transaction by transaction
        parts = [hashes[i : i + RECEIPT_BATCH] for i in range(0, len(hashes), RECEIPT_BATCH)]
        answered = await asyncio.gather(*(self._receipt_batch(part) for part in parts))
        return [r for part in answered for r in part]

    async def _receipt_batch(self, hashes: list[str]) -> list[object]:
        async with self._receipt_requests:
            answers = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            receipts: list[object] = []
            for h, answer in zip(hashes, answers, strict=True):
                if isinstance(answer, RpcError) or answer is None:
                    # a batch answered in part (or with the wrong ids): ask for this one alone
                    answer = await self.rpc.call("eth_getTransactionReceipt", [h])
                receipts.append(answer)
            return receipts

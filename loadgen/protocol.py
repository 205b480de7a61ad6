"""The FederatedLearning round driven step by step from one process.

The coordinator's calls (open, close commits, close reveals, elect) are few and ordered, so
they go through web3 and wait for each receipt. ``PoolMember`` plays a pool member without pacing;
it serves the smoke round and the contract tests, while load runs send workers' transactions
from ``actors/`` on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from loadgen import contracts, model
from loadgen.chain import build_transaction, send_transaction, wait_receipts
from loadgen.fees import Fees

if TYPE_CHECKING:
    from hexbytes import HexBytes


class RoundFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class PoolResult:
    pool: int
    digest: bytes
    votes: int


class Coordinator:
    def __init__(self, w3: Web3, account: LocalAccount, contract: Contract, fees: Fees | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.contract = contract
        self.fees = fees

    def _send(self, data: bytes) -> TxReceipt:
        receipt = send_transaction(self.w3, self.account, to=self.contract.address, data=data, fees=self.fees)
        if receipt["status"] != 1:
            raise RoundFailed(f"coordinator transaction {receipt['transactionHash'].hex()} reverted")
        return receipt

    def open_round(self, num_chunks: int, pool_size: int, members: list[str], reward: int = 1) -> int:
        data = self.contract.encode_abi("openRound", [num_chunks, pool_size, members, reward])
        receipt = self._send(bytes.fromhex(data.removeprefix("0x")))
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
        return event["args"]["roundId"]

    def close_commit_phase(self, round_id: int) -> None:
        self._send(bytes.fromhex(self.contract.encode_abi("closeCommitPhase", [round_id]).removeprefix("0x")))

    def close_reveal_phase(self, round_id: int) -> None:
        self._send(bytes.fromhex(self.contract.encode_abi("closeRevealPhase", [round_id]).removeprefix("0x")))

    def elect(self, round_id: int, pool: int) -> PoolResult:
        receipt = self._send(bytes.fromhex(self.contract.encode_abi("elect", [round_id, pool]).removeprefix("0x")))
        (event,) = self.contract.events.ModelElected().process_receipt(receipt, errors=DISCARD)
        return PoolResult(pool=pool, digest=bytes(event["args"]["digest"]), votes=event["args"]["votes"])


class PoolMember:
    """A pool member that sends its transactions back to back, with its own nonce count.

    ``send`` returns the hashes without waiting, so several workers' transactions share blocks.
    """

    def __init__(self, w3: Web3, account: LocalAccount, contract: Contract, fees: Fees | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.contract = contract
        self.fees = fees
        self.nonce: int = w3.eth.get_transaction_count(account.address, "pending")

    @property
    def address(self) -> str:
        return self.account.address

    def send(self, calldata: list[bytes], gas: int = 2_000_000) -> list[HexBytes]:
        hashes = []
        for data in calldata:
            raw = build_transaction(self.w3, self.account, to=self.contract.address, data=data, nonce=self.nonce, gas=gas, fees=self.fees)
            hashes.append(self.w3.eth.send_raw_transaction(raw))
            self.nonce += 1
        return hashes

    def commit(self, round_id: int, digest: bytes) -> list[HexBytes]:
        return self.send([contracts.commit_calldata(round_id, model.commitment(digest, self.address))])

    def reveal(self, round_id: int, chunks: list[bytes], first_index: int = 0) -> list[HexBytes]:
        return self.send([contracts.reveal_chunk_calldata(round_id, first_index + i, c) for i, c in enumerate(chunks)])


def play_round(
    coordinator: Coordinator, workers: list[PoolMember], models: list[bytes], pool_size: int, chunk_size: int
) -> tuple[int, list[PoolResult]]:
    """A whole round in which every worker commits and reveals its model honestly."""
    w3 = coordinator.w3
    num_chunks = model.chunk_count(len(models[0]) // model.WORD, chunk_size)
    round_id = coordinator.open_round(num_chunks, pool_size, [w.address for w in workers])
    _all_succeed(w3, [h for w, m in zip(workers, models, strict=True) for h in w.commit(round_id, model.model_digest(m, chunk_size))])
    coordinator.close_commit_phase(round_id)
    _all_succeed(w3, [h for w, m in zip(workers, models, strict=True) for h in w.reveal(round_id, model.split_chunks(m, chunk_size))])
    coordinator.close_reveal_phase(round_id)
    return round_id, [coordinator.elect(round_id, p) for p in range(len(workers) // pool_size)]


def _all_succeed(w3: Web3, hashes: list[HexBytes]) -> None:
    failed = [r["transactionHash"].hex() for r in wait_receipts(w3, hashes) if r["status"] != 1]
    if failed:
        raise RoundFailed(f"{len(failed)} worker transactions reverted, first {failed[0]}")

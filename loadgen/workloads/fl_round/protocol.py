"""The FederatedLearning round driven step by step from one process.

The coordinator's calls (open, close commits, close reveals, elect) are few and ordered, so
they go through web3 and wait for their receipts; the end of a round (the close and every
pool's election) leaves at once and shares a block, as a search waits for it between trials.
``PoolMember`` plays a pool member without pacing; it serves the smoke round and the contract
tests, while load runs send workers' transactions from ``actors/`` on a schedule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxReceipt

from loadgen.chains import contracts
from loadgen.chains.chain import build_transaction, send_transaction, submit, wait_receipts
from loadgen.chains.fees import Fees
from loadgen.chains.node import RpcError
from loadgen.common.errors import CoordinatorFailed
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.shape import PoolResult, RoundShape, elect_gas_bound

if TYPE_CHECKING:
    from hexbytes import HexBytes


class RoundFailed(RuntimeError):
    pass


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Names the coordinator call whatever the node answers inside (its own words kept)."""
    try:
        yield
    except RoundFailed as e:
        raise CoordinatorFailed(name, str(e)) from None
    except RpcError as e:  # what the node said when it refused the transaction
        raise CoordinatorFailed(name, e.message) from None
    except Web3RPCError as e:
        error = e.rpc_response.get("error") if isinstance(e.rpc_response, dict) else None
        words = error.get("message") if isinstance(error, dict) else None
        raise CoordinatorFailed(name, str(words or e)) from None
    except ContractLogicError as e:
        raise CoordinatorFailed(name, f"reverted ({e.message or e})") from None


class Coordinator:
    def __init__(self, w3: Web3, account: LocalAccount, contract: Contract, fees: Fees | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.contract = contract
        self.fees = fees

    def _send(self, data: bytes) -> TxReceipt:
        return _succeeded(send_transaction(self.w3, self.account, to=self.contract.address, data=data, fees=self.fees))

    def open_round(self, shape: RoundShape) -> int:
        with step("openRound"):
            return self._opened(self._send(self._open_calldata(shape)))

    def still_open(self, round_id: int) -> bool:
        """The round is this coordinator's and still takes commitments (a round opened ahead)."""
        coordinator, phase, *_ = self.contract.functions.rounds(round_id).call()
        return bool(coordinator == self.account.address and phase == 1)  # Phase.Commit

    def close_commit_phase(self, round_id: int) -> None:
        with step("closeCommitPhase"):
            self._send(self._calldata("closeCommitPhase", round_id))

    def close_reveal_phase(self, round_id: int) -> None:
        with step("closeRevealPhase"):
            self._send(self._calldata("closeRevealPhase", round_id))

    def elect(self, round_id: int, pool: int) -> PoolResult:
        with step(f"elect (pool {pool})"):
            return self._elected(pool, self._send(self._calldata("elect", round_id, pool)))

    def finish_round(
        self, round_id: int, pools: int, pool_size: int, open_next: RoundShape | None = None
    ) -> tuple[list[PoolResult], int | None]:
        """Closes the reveal phase, elects every pool and opens the next round (``open_next``,
        if any): the calls leave back to back with consecutive nonces, so they share a block
        (one wait, not one per call). Answers the elections and the next round's id. An
        election that ran out of its bounded gas is sent again, estimated now that the close
        is mined."""
        with step("closeRevealPhase and elect"):
            return self._finish_round(round_id, pools, pool_size, open_next)

    def _finish_round(self, round_id: int, pools: int, pool_size: int, open_next: RoundShape | None) -> tuple[list[PoolResult], int | None]:
        w3, account, to = self.w3, self.account, self.contract.address
        nonce = w3.eth.get_transaction_count(account.address, "pending")
        gas = min(elect_gas_bound(pool_size), w3.eth.get_block("latest")["gasLimit"])
        calls: list[tuple[bytes, int | None]] = [(self._calldata("closeRevealPhase", round_id), None)]
        calls += [(self._calldata("elect", round_id, p), gas) for p in range(pools)]
        if open_next is not None:
            calls.append((self._open_calldata(open_next), None))
        raws = [build_transaction(w3, account, to=to, data=d, nonce=nonce + i, gas=g, fees=self.fees) for i, (d, g) in enumerate(calls)]
        receipts = wait_receipts(w3, [submit(w3, raw) for raw in raws])
        closed, elections, opened = receipts[0], receipts[1 : 1 + pools], receipts[1 + pools :]
        for receipt in [closed, *opened]:
            _succeeded(receipt)
        results = [self._elected(p, r) if r["status"] == 1 else self.elect(round_id, p) for p, r in enumerate(elections)]
        return results, self._opened(opened[0]) if opened else None

    def _open_calldata(self, shape: RoundShape) -> bytes:
        return self._calldata("openRound", shape.num_chunks, shape.pool_size, list(shape.members), shape.reward)

    def _opened(self, receipt: TxReceipt) -> int:
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
        return event["args"]["roundId"]

    def _calldata(self, function: str, *args: object) -> bytes:
        return contracts.calldata(self.contract, function, *args)

    def _elected(self, pool: int, receipt: TxReceipt) -> PoolResult:
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
    round_id = coordinator.open_round(RoundShape(num_chunks, pool_size, tuple(w.address for w in workers)))
    _all_succeed(w3, [h for w, m in zip(workers, models, strict=True) for h in w.commit(round_id, model.model_digest(m, chunk_size))])
    coordinator.close_commit_phase(round_id)
    _all_succeed(w3, [h for w, m in zip(workers, models, strict=True) for h in w.reveal(round_id, model.split_chunks(m, chunk_size))])
    return round_id, coordinator.finish_round(round_id, len(workers) // pool_size, pool_size)[0]


def _succeeded(receipt: TxReceipt) -> TxReceipt:
    if receipt["status"] != 1:
        raise RoundFailed(f"coordinator transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def _all_succeed(w3: Web3, hashes: list[HexBytes]) -> None:
    failed = [r["transactionHash"].hex() for r in wait_receipts(w3, hashes) if r["status"] != 1]
    if failed:
        raise RoundFailed(f"{len(failed)} worker transactions reverted, first {failed[0]}")

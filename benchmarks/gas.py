"""Gas used by the study's transactions on the devnet (EVM: london, as GoQuorum).

    .venv/bin/python benchmarks/gas.py

Prints gas per commitment, per 1,000-value reveal chunk (first, middle, last), the
coordinator's calls, ArrayCopy's gas by array size with the largest size that fits a
30M-gas transaction, and the example contracts of the contract-call workload
(configs/examples: Counter, Token, KeyValue).
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from loadgen.chains import contracts
from loadgen.chains.chain import connect, send_transaction, wait_receipts
from loadgen.chains.devnet import DEV_MNEMONIC, Devnet, DevnetSettings
from loadgen.config.accounts import MnemonicSource, derive_account
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.protocol import Coordinator, PoolMember

CHUNK = 1_000


def main() -> None:
    with Devnet(DevnetSettings(block_time_s=0)) as node:
        w3 = connect(node.url)
        source = MnemonicSource("devnet", DEV_MNEMONIC)
        boss, *accounts = (derive_account(source, i).account() for i in range(9))
        fl = contracts.deploy(w3, boss, "FederatedLearning")
        coordinator = Coordinator(w3, boss, fl)
        workers = [PoolMember(w3, a, fl) for a in accounts]
        m = model.random_model(3_000, 1)
        chunks = model.split_chunks(m, CHUNK)
        rows: list[tuple[str, int]] = []

        for n in (1, 8):
            data = bytes.fromhex(fl.encode_abi("openRound", [len(chunks), n, [w.address for w in workers[:n]], 1])[2:])
            receipt = send_transaction(w3, boss, to=fl.address, data=data)
            rows.append((f"openRound, {n} member(s)", receipt["gasUsed"]))
        round_id = fl.functions.roundCount().call()
        commits = wait_receipts(w3, [h for w in workers for h in w.commit(round_id, model.model_digest(m, CHUNK))])
        rows.append(("commit", commits[0]["gasUsed"]))
        coordinator.close_commit_phase(round_id)
        reveal = wait_receipts(w3, workers[0].reveal(round_id, chunks))
        assert all(r["status"] == 1 for r in reveal)
        (verified,) = fl.events.RevealVerified().process_receipt(reveal[-1], errors=DISCARD)
        assert verified["args"]["valid"]
        rows += [
            ("revealChunk, 1,000 values, first", reveal[0]["gasUsed"]),
            ("revealChunk, 1,000 values, middle", reveal[1]["gasUsed"]),
            ("revealChunk, 1,000 values, last (verifies)", reveal[2]["gasUsed"]),
        ]
        wait_receipts(w3, [h for w in workers[1:] for h in w.reveal(round_id, chunks)])
        coordinator.close_reveal_phase(round_id)
        data = bytes.fromhex(fl.encode_abi("elect", [round_id, 0])[2:])
        rows.append(("elect, pool of 8 (8 rewards)", send_transaction(w3, boss, to=fl.address, data=data)["gasUsed"]))

        ac = contracts.deploy(w3, boss, "ArrayCopy")
        limit = 30_000_000
        for size in (1_000, 2_000, 5_000, 10_000):
            calldata = contracts.array_copy_calldata(model.random_model(size, size))
            # first call grows the array (fresh slots); the second overwrites them, which is what
            # a run repeating one size pays from its second transaction on
            for label in ("fresh slots", "overwrite"):
                receipt = send_transaction(w3, boss, to=ac.address, data=calldata, gas=limit)
                status = "ok" if receipt["status"] == 1 else "out of gas"
                rows.append((f"ArrayCopy.copy {size:,} values, {label} ({status} at {limit:,})", receipt["gasUsed"]))

        rows += examples(w3, boss, accounts[0])

    width = max(len(name) for name, _ in rows)
    for name, gas in rows:
        print(f"{name:<{width}}  {gas:>12,}")


def examples(w3: Web3, boss: LocalAccount, other: LocalAccount) -> list[tuple[str, int]]:
    """The contract-call examples, each call made twice: the first pays for fresh storage."""
    rows: list[tuple[str, int]] = []
    calls: tuple[tuple[str, str, list[Any]], ...] = (
        ("Counter", "increment", []),
        ("Token", "transfer", [other.address, 1]),
        ("KeyValue", "put", [b"k".ljust(32, b"\0"), bytes(range(250)) * 4]),
    )
    for name, function, args in calls:
        contract = contracts.deploy(w3, boss, name)
        data = bytes.fromhex(contract.encode_abi(function, args)[2:])
        for label in ("first", "again"):
            receipt = send_transaction(w3, boss, to=contract.address, data=data)
            assert receipt["status"] == 1
            rows.append((f"{name}.{function}{' (1,000 bytes)' if name == 'KeyValue' else ''}, {label}", receipt["gasUsed"]))
    return rows


if __name__ == "__main__":
    main()

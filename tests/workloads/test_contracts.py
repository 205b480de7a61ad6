"""The study's contracts on a real Anvil: the protocol's rules, the election, ArrayCopy's reverts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from loadgen.chains import contracts
from loadgen.chains.chain import send_transaction, wait_receipts
from loadgen.workloads.fl_round import model, protocol
from loadgen.workloads.fl_round.protocol import play_round
from loadgen.workloads.fl_round.shape import RoundShape

REPO = Path(__file__).resolve().parents[2]
CHUNK = 100


def refusal(w3, sender: str, to: str, data: bytes) -> str:
    """The custom error a call is refused with, checked both by eth_call and by a mined receipt."""
    artifact = contracts.load("FederatedLearning")
    with pytest.raises(ContractCustomError) as caught:
        w3.eth.call({"from": sender, "to": to, "data": data})
    return artifact.decode_error(caught.value.data).split("(")[0]


def refused_on_chain(w3, worker, data: bytes) -> str:
    name = refusal(w3, worker.address, worker.contract.address, data)
    (receipt,) = wait_receipts(w3, worker.send([data]))
    assert receipt["status"] == 0
    return name


def committed_round(w3, coordinator, workers, models, pool_size):
    round_id = coordinator.open_round(
        RoundShape(model.chunk_count(len(models[0]) // 32, CHUNK), pool_size, tuple(w.address for w in workers))
    )
    hashes = [h for w, m in zip(workers, models, strict=True) for h in w.commit(round_id, model.model_digest(m, CHUNK))]
    assert all(r["status"] == 1 for r in wait_receipts(w3, hashes))
    return round_id


@pytest.mark.chain
def test_full_round_majority_is_elected_and_rewarded(w3, coordinator, workers, fl):
    models = [model.random_model(250, 1), model.random_model(250, 1), model.random_model(250, 2)]
    trio = workers[:3]
    round_id, (result,) = play_round(coordinator, trio, models, pool_size=3, chunk_size=CHUNK)
    assert result.digest == model.model_digest(models[0], CHUNK)
    assert result.votes == 2
    assert fl.functions.electedDigest(round_id, 0).call() == result.digest
    assert [fl.functions.rewardOf(w.address).call() for w in trio] == [1, 1, 0]
    # the reward is an accounting balance: withdrawing zeroes it and leaves a receipt
    (receipt,) = wait_receipts(w3, trio[0].send([bytes.fromhex(fl.encode_abi("withdrawReward", []).removeprefix("0x"))]))
    (event,) = fl.events.RewardWithdrawn().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["amount"] == 1
    assert fl.functions.rewardOf(trio[0].address).call() == 0
    assert refusal(w3, trio[2].address, fl.address, bytes.fromhex(fl.encode_abi("withdrawReward", [])[2:])) == "NothingToWithdraw"


@pytest.mark.chain
def test_pools_elect_independently(w3, coordinator, workers, fl):
    six = workers[:6]
    models = [model.random_model(120, s) for s in (1, 1, 2, 3, 4, 4)]
    round_id, results = play_round(coordinator, six, models, pool_size=3, chunk_size=CHUNK)
    assert [r.digest for r in results] == [model.model_digest(models[0], CHUNK), model.model_digest(models[4], CHUNK)]
    assert [fl.functions.rewardOf(w.address).call() for w in six] == [1, 1, 0, 0, 1, 1]
    assert fl.functions.membersOf(round_id, 1).call() == [w.address for w in six[3:]]


@pytest.mark.chain
def test_the_election_gas_bound_covers_the_worst_case(w3, coordinator, workers, fl):
    """Every member valid and agreeing, every reward a fresh slot: the dearest election of a pool."""
    eight = workers[:8]
    m = model.random_model(120, 1)
    round_id = committed_round(w3, coordinator, eight, [m] * 8, 8)
    coordinator.close_commit_phase(round_id)
    wait_receipts(w3, [h for w in eight for h in w.reveal(round_id, model.split_chunks(m, CHUNK))])
    nonce = w3.eth.get_transaction_count(coordinator.account.address)
    (result,), _ = coordinator.finish_round(round_id, 1, 8)
    assert result.votes == 8
    # the close and the election, each sent once: the bound was enough
    assert w3.eth.get_transaction_count(coordinator.account.address) == nonce + 2
    (event,) = fl.events.ModelElected().get_logs(from_block=w3.eth.block_number)
    assert w3.eth.get_transaction_receipt(event["transactionHash"])["gasUsed"] <= protocol.elect_gas_bound(8)


@pytest.mark.chain
def test_an_election_short_of_gas_is_sent_again_estimated(w3, coordinator, workers, fl, monkeypatch):
    monkeypatch.setattr(protocol, "elect_gas_bound", lambda pool_size: 60_000)
    six = workers[:6]
    models = [model.random_model(120, s) for s in (1, 1, 2, 3, 3, 3)]
    nonce = w3.eth.get_transaction_count(coordinator.account.address)
    _, results = play_round(coordinator, six, models, pool_size=3, chunk_size=CHUNK)
    assert [(r.pool, r.digest, r.votes) for r in results] == [
        (0, model.model_digest(models[0], CHUNK), 2), (1, model.model_digest(models[3], CHUNK), 3)
    ]  # fmt: skip
    # open, close commits, close reveals, two elections out of gas, two again
    assert w3.eth.get_transaction_count(coordinator.account.address) == nonce + 7
    assert [fl.functions.rewardOf(w.address).call() for w in six] == [1, 1, 0, 1, 1, 1]


@pytest.mark.chain
def test_tie_goes_to_the_smallest_digest(w3, coordinator, workers, fl):
    models = [model.random_model(50, s) for s in (5, 6)]
    digests = [model.model_digest(m, CHUNK) for m in models]
    _, (result,) = play_round(coordinator, workers[:2], models, pool_size=2, chunk_size=CHUNK)
    assert result.votes == 1
    assert result.digest == min(digests, key=lambda d: int.from_bytes(d, "big"))


@pytest.mark.chain
def test_tampered_chunk_fails_verification_and_is_not_counted(w3, coordinator, workers, fl):
    honest = model.random_model(300, 1)
    trio = workers[:3]
    round_id = committed_round(w3, coordinator, trio, [honest, honest, honest], 3)
    coordinator.close_commit_phase(round_id)
    chunks = model.split_chunks(honest, CHUNK)
    tampered = bytearray(chunks[1])
    tampered[5] ^= 0xFF
    receipts = wait_receipts(w3, trio[0].reveal(round_id, [chunks[0], bytes(tampered), chunks[2]]))
    assert all(r["status"] == 1 for r in receipts)  # the reveal is final and recorded, not reverted
    (verified,) = fl.events.RevealVerified().process_receipt(receipts[-1], errors=DISCARD)
    assert verified["args"]["valid"] is False
    assert fl.functions.revealStateOf(round_id, trio[0].address).call() == 3  # Invalid
    wait_receipts(w3, trio[1].reveal(round_id, chunks))
    coordinator.close_reveal_phase(round_id)
    result = coordinator.elect(round_id, 0)
    assert (result.digest, result.votes) == (model.model_digest(honest, CHUNK), 1)
    assert [fl.functions.rewardOf(w.address).call() for w in trio] == [0, 1, 0]


@pytest.mark.chain
def test_each_protocol_violation_has_its_own_error(w3, coordinator, workers, fl):
    m = model.random_model(300, 1)
    digest = model.model_digest(m, CHUNK)
    chunks = model.split_chunks(m, CHUNK)
    a, b, outsider = workers[0], workers[1], workers[5]
    round_id = coordinator.open_round(RoundShape(len(chunks), 2, (a.address, b.address)))
    wait_receipts(w3, a.commit(round_id, digest))

    assert refused_on_chain(w3, a, contracts.reveal_chunk_calldata(round_id, 0, chunks[0])) == "RevealNotOpen"
    assert refused_on_chain(w3, a, contracts.commit_calldata(round_id, model.commitment(digest, a.address))) == "AlreadyCommitted"
    assert (
        refused_on_chain(w3, outsider, contracts.commit_calldata(round_id, model.commitment(digest, outsider.address))) == "NotPoolMember"
    )
    assert refused_on_chain(w3, a, contracts.commit_calldata(round_id + 7, b"\x01" * 32)) == "UnknownRound"
    not_coordinator = bytes.fromhex(fl.encode_abi("closeCommitPhase", [round_id])[2:])
    assert refused_on_chain(w3, a, not_coordinator) == "NotCoordinator"

    coordinator.close_commit_phase(round_id)
    late = contracts.commit_calldata(round_id, model.commitment(digest, b.address))
    assert refused_on_chain(w3, b, late) == "CommitPhaseOver"
    assert refused_on_chain(w3, b, contracts.reveal_chunk_calldata(round_id, 0, chunks[0])) == "NotCommitted"
    assert refused_on_chain(w3, a, contracts.reveal_chunk_calldata(round_id, 1, chunks[1])) == "ChunkOutOfOrder"
    assert refused_on_chain(w3, a, contracts.reveal_chunk_calldata(round_id, 0, b"")) == "EmptyChunk"
    assert all(r["status"] == 1 for r in wait_receipts(w3, a.reveal(round_id, chunks)))
    assert refused_on_chain(w3, a, contracts.reveal_chunk_calldata(round_id, 0, chunks[0])) == "AlreadyRevealed"
    elect = bytes.fromhex(fl.encode_abi("elect", [round_id, 0])[2:])
    assert refused_on_chain(w3, a, elect) == "WrongPhase"

    coordinator.close_reveal_phase(round_id)
    assert refused_on_chain(w3, a, bytes.fromhex(fl.encode_abi("elect", [round_id, 2])[2:])) == "UnknownPool"
    coordinator.elect(round_id, 0)
    assert refused_on_chain(w3, a, elect) == "PoolAlreadyElected"


@pytest.mark.chain
def test_round_shape_is_checked(w3, coordinator, workers, fl):
    three = [w.address for w in workers[:3]]
    bad_shape = bytes.fromhex(fl.encode_abi("openRound", [2, 2, three, 1])[2:])
    assert refusal(w3, workers[0].address, fl.address, bad_shape) == "InvalidRoundShape"
    duplicate = bytes.fromhex(fl.encode_abi("openRound", [2, 2, [three[0], three[0]], 1])[2:])
    assert refusal(w3, workers[0].address, fl.address, duplicate) == "DuplicateMember"


@pytest.mark.unit
def test_error_decoding_reads_the_arguments():
    artifact = contracts.load("FederatedLearning")
    data = contracts.selector("ChunkOutOfOrder(uint256,uint256)") + (0).to_bytes(32, "big") + (2).to_bytes(32, "big")
    assert artifact.decode_error(data) == "ChunkOutOfOrder(expected=0, got=2)"
    assert artifact.decode_error("0x") == "reverted without data"


@pytest.mark.chain
def test_fast_calldata_matches_web3_encoding(fl):
    m = model.random_model(37, 3)
    ints = model.ints_from_words(m)
    assert contracts.reveal_chunk_calldata(4, 2, m).hex() == fl.encode_abi("revealChunk", [4, 2, ints])[2:]
    c = model.commitment(model.model_digest(m, 10), "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert contracts.commit_calldata(9, c).hex() == fl.encode_abi("commit", [9, c])[2:]
    array_copy = contracts.load("ArrayCopy")
    encoded = fl.w3.eth.contract(abi=array_copy.abi).encode_abi("copy", [ints])
    assert contracts.array_copy_calldata(m).hex() == encoded[2:]


@pytest.mark.chain
def test_array_copy_small_commits_large_reverts_out_of_gas(w3, dev_accounts):
    sender = dev_accounts[3]
    ac = contracts.deploy(w3, sender, "ArrayCopy")
    gas = 5_000_000
    small = send_transaction(w3, sender, to=ac.address, data=contracts.array_copy_calldata(model.random_model(100, 1)), gas=gas)
    assert small["status"] == 1
    assert ac.functions.storedLength().call() == 100
    large = send_transaction(w3, sender, to=ac.address, data=contracts.array_copy_calldata(model.random_model(5_000, 2)), gas=gas)
    assert large["status"] == 0  # in a block, but reverted: the study's tool called this committed
    assert large["gasUsed"] == gas  # out of gas burns the whole limit
    assert ac.functions.storedLength().call() == 100


@pytest.mark.subprocess
def test_committed_artifacts_are_not_stale(tmp_path):
    subprocess.run(["node", str(REPO / "contracts" / "build.mjs"), "--out", str(tmp_path)], check=True, capture_output=True)
    for fresh in sorted(tmp_path.glob("*.json")):
        committed = REPO / "contracts" / "artifacts" / fresh.name
        assert committed.is_file(), f"{committed} missing: run `npm run build:contracts`"
        assert json.loads(committed.read_text()) == json.loads(fresh.read_text()), f"{fresh.name} is stale: run `npm run build:contracts`"
    assert {p.name for p in tmp_path.glob("*.json")} == {p.name for p in (REPO / "contracts" / "artifacts").glob("*.json")}

"""The off-chain digest is exactly what the contract computes."""

from __future__ import annotations

import pytest
from eth_hash.auto import keccak
from web3.logs import DISCARD

from loadgen.chains.chain import wait_receipts
from loadgen.workloads.fl_round import model
from loadgen.workloads.fl_round.shape import RoundShape


@pytest.mark.unit
def test_chain_digest_definition():
    chunks = [model.words_from_ints([1, 2, 3]), model.words_from_ints([4])]
    step1 = keccak(b"\x00" * 32 + (1).to_bytes(32, "big") + (2).to_bytes(32, "big") + (3).to_bytes(32, "big"))
    assert model.chain_digest(chunks) == keccak(step1 + (4).to_bytes(32, "big"))


@pytest.mark.unit
def test_chunking_keeps_every_word_and_shortens_only_the_last():
    m = model.random_model(2_501, seed=7)
    chunks = model.split_chunks(m, 1_000)
    assert [len(c) // 32 for c in chunks] == [1_000, 1_000, 501]
    assert b"".join(chunks) == m
    assert model.chunk_count(2_501, 1_000) == 3


@pytest.mark.unit
def test_digest_depends_on_chunking_and_on_every_word():
    m = model.random_model(100, seed=1)
    assert model.model_digest(m, 10) != model.model_digest(m, 20)
    tampered = bytearray(m)
    tampered[-1] ^= 1
    assert model.model_digest(bytes(tampered), 10) != model.model_digest(m, 10)


@pytest.mark.unit
def test_commitment_is_bound_to_the_address():
    d = model.model_digest(model.random_model(10, seed=1), 4)
    a = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert model.commitment(d, a) == keccak(d + bytes.fromhex(a[2:]))
    assert model.commitment(d, a) != model.commitment(d, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC")


@pytest.mark.unit
def test_ints_round_trip():
    values = [0, 1, 2**256 - 1, 12345]
    assert model.ints_from_words(model.words_from_ints(values)) == values


@pytest.mark.parametrize(
    ("length", "chunk_size"),
    [(1, 1_000), (999, 1_000), (1_000, 1_000), (1_001, 1_000), (2_500, 1_000), (37, 5), (64, 64), (130, 7)],
)
@pytest.mark.chain
def test_offchain_digest_equals_onchain(w3, coordinator, workers, length, chunk_size):
    m = model.random_model(length, seed=length * 31 + chunk_size)
    chunks = model.split_chunks(m, chunk_size)
    worker = workers[0]
    round_id = coordinator.open_round(RoundShape(len(chunks), 1, (worker.address,)))
    digest = model.model_digest(m, chunk_size)
    wait_receipts(w3, worker.commit(round_id, digest))
    coordinator.close_commit_phase(round_id)
    receipts = wait_receipts(w3, worker.reveal(round_id, chunks))
    assert all(r["status"] == 1 for r in receipts)

    accs = [e["args"]["acc"] for r in receipts for e in coordinator.contract.events.ChunkRevealed().process_receipt(r, errors=DISCARD)]
    expected = [model.chain_digest(chunks[: i + 1]) for i in range(len(chunks))]
    assert accs == expected
    (verified,) = coordinator.contract.events.RevealVerified().process_receipt(receipts[-1], errors=DISCARD)
    assert verified["args"]["digest"] == digest
    assert verified["args"]["valid"] is True


@pytest.mark.unit
def test_pool_chunks_are_deterministic_distinct_and_sized():
    chunks = [model.pool_chunk(7, 0, 3, i, 2_500, 1_000) for i in range(3)]
    assert [len(c) // 32 for c in chunks] == [1_000, 1_000, 500]
    assert len(set(chunks)) == 3
    assert chunks[1] == model.pool_chunk(7, 0, 3, 1, 2_500, 1_000)
    assert model.pool_chunk(7, 0, 4, 1, 2_500, 1_000) != chunks[1]  # another pool, another model
    assert model.pool_chunk(7, 1, 3, 1, 2_500, 1_000) != chunks[1]  # another epoch, another model
    assert model.pool_digest(7, 0, 3, 2_500, 1_000) == model.chain_digest(chunks)

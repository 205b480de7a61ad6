"""Models as the protocol sees them: uint256 words, split in chunks, hashed the way
contracts/src/FederatedLearning.sol hashes them.

A model is held as raw big-endian 32-byte words (``bytes`` of length 32·n): that is already
the packed form the contract hashes and most of the ABI form a chunk travels in, so neither
hashing nor encoding has to convert Python integers on the sending path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from loadgen.chains.contracts import WORD
from loadgen.common.keccak import keccak

ZERO_DIGEST = b"\x00" * WORD


def chunk_count(model_length: int, chunk_size: int) -> int:
    return -(-model_length // chunk_size)


def random_model(model_length: int, seed: int) -> bytes:
    """A reproducible model of ``model_length`` uint256 values."""
    return np.random.default_rng(seed).bytes(WORD * model_length)


def words_from_ints(values: Sequence[int]) -> bytes:
    return b"".join(int(v).to_bytes(WORD, "big") for v in values)


def ints_from_words(words: bytes) -> list[int]:
    return [int.from_bytes(words[i : i + WORD], "big") for i in range(0, len(words), WORD)]


def split_chunks(model: bytes, chunk_size: int) -> list[bytes]:
    """The model's chunks of ``chunk_size`` words; the last one may be shorter."""
    if len(model) % WORD:
        raise ValueError("a model is a whole number of 32-byte words")
    step = chunk_size * WORD
    return [model[i : i + step] for i in range(0, len(model), step)]


def chain_digest(chunks: Iterable[bytes], acc: bytes = ZERO_DIGEST) -> bytes:
    """acc_i = keccak256(acc_{i-1} ‖ chunk_i), starting from 32 zero bytes."""
    for chunk in chunks:
        acc = keccak(acc + chunk)
    return acc


def model_digest(model: bytes, chunk_size: int) -> bytes:
    return chain_digest(split_chunks(model, chunk_size))


def commitment(digest: bytes, worker_address: str) -> bytes:
    """keccak256(digest ‖ address): binds the model to the worker who commits to it."""
    return keccak(digest + bytes.fromhex(worker_address.removeprefix("0x")))


@lru_cache(maxsize=1024)
def _pool_base(seed: int, epoch: int, pool: int, chunk_size: int) -> bytes:
    return np.random.default_rng((seed, epoch, pool)).bytes(WORD * chunk_size)


def pool_chunk(seed: int, epoch: int, pool: int, index: int, model_length: int, chunk_size: int) -> bytes:
    """Chunk ``index`` of the model pool ``pool`` agrees on in ``epoch``.

    Chunks are made one at a time, so an actor hosting many pools of a million-parameter model
    never holds whole models (32 MB each): the pool's random base chunk with its first word
    replaced by the chunk's index, distinct per chunk and as costly in calldata as random data.
    """
    words = min(chunk_size, model_length - index * chunk_size)
    return index.to_bytes(WORD, "big") + _pool_base(seed, epoch, pool, chunk_size)[WORD : WORD * words]


def pool_digest(seed: int, epoch: int, pool: int, model_length: int, chunk_size: int) -> bytes:
    return chain_digest(pool_chunk(seed, epoch, pool, i, model_length, chunk_size) for i in range(chunk_count(model_length, chunk_size)))

"""Keccak-256, the hash Ethereum uses everywhere, through the fastest binding the ecosystem
ships: safe-pysha3 (the Keccak team's optimised code, eth-hash's other backend). On a 32 kB
chunk transaction it is about a fifth faster than pycryptodome, eth-hash's default, and on a
small input five times (its call has no Python layer). A chunk transaction is hashed twice (to
sign it, and for its own hash), so this is a sender's largest single cost (BENCHMARKS.md)."""

from __future__ import annotations

from sha3 import keccak_256


def keccak(data: bytes) -> bytes:
    return keccak_256(data).digest()

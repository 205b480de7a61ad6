"""A round's shape and its coordinator's gas, as a plan needs them before any chain is there:
what a round is opened with, what an election found, and what opening and electing cost."""

from __future__ import annotations

from dataclasses import dataclass


def elect_gas(pool_size: int) -> int:
    """An election's gas as measured (see ``elect_gas_bound``): what a block must hold for it."""
    n = pool_size
    return 77_700 + 32_200 * n + 189 * n * n


def open_gas(members: int) -> int:
    """Opening a round stores every member: measured on Anvil, 319,776 gas for 4 members,
    3,397,536 for 64 and 52,650,876 for 1,024."""
    return 115_000 + 51_300 * members


def elect_gas_bound(pool_size: int) -> int:
    """An election's gas, from above: the node cannot estimate one before the close it follows
    is mined. The worst case, every member valid and agreeing and each reward a fresh slot,
    measured on Anvil (london): 110,048 gas for 1 member, 347,208 for 8, 1,300,946 for 32,
    7,293,203 for 128, about 77,700 + 32,200 n + 189 n²; this is a quarter more."""
    n = pool_size
    return 100_000 + 40_000 * n + 240 * n * n


@dataclass(frozen=True)
class RoundShape:
    """What a round is opened with: its members list the pools back to back."""

    num_chunks: int
    pool_size: int
    members: tuple[str, ...]
    reward: int = 1


@dataclass(frozen=True)
class PoolResult:
    pool: int
    digest: bytes
    votes: int

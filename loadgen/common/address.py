"""Ethereum addresses: the one an account's key gives, and its mixed-case checksum form
(EIP-55), which nodes and web3 expect where an address is typed by hand."""

from __future__ import annotations

from coincurve import PrivateKey

from loadgen.common.keccak import keccak


def address_of(private_key: bytes) -> str:
    """The checksummed address of the account that ``private_key`` signs for."""
    return checksummed(keccak(PrivateKey(private_key).public_key.format(compressed=False)[1:])[-20:].hex())


def checksummed(address: str) -> str:
    """EIP-55: a hex letter is upper case where the Keccak of the lower-case address has a
    nibble of 8 or more."""
    plain = address.lower().removeprefix("0x")
    if len(plain) != 40 or any(c not in "0123456789abcdef" for c in plain):
        raise ValueError(f"not an address: {address!r}")
    mask = keccak(plain.encode()).hex()[:40]
    return "0x" + "".join(c.upper() if int(m, 16) >= 8 else c for c, m in zip(plain, mask, strict=True))

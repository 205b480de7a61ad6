"""BIP-39 seeds and BIP-32 keys: a mnemonic's words checked, stretched into a seed, and the
seed walked down a derivation path to one private key, as every Ethereum wallet does.

eth-account does the same, but importing it costs a run about a third of a CPU-second (its key
files pull pycryptodome, which parses C declarations through cffi at import) for what is a few
HMACs and one elliptic-curve multiplication per key. tests/config/test_hdkeys.py checks every
result against eth-account."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from coincurve import PrivateKey

from loadgen.config.bip39_english import WORDS

_INDEX = {word: i for i, word in enumerate(WORDS)}
_CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1's n
_HARDENED = 0x80000000
VALID_LENGTHS = (12, 15, 18, 21, 24)


def unknown_words(words: list[str]) -> list[int]:
    """The 1-based positions of the words that are not in the English list."""
    return [i + 1 for i, w in enumerate(words) if w not in _INDEX]


def checksum_ok(words: list[str]) -> bool:
    """Whether the words' last bits are the checksum of the rest (BIP-39): 11 bits a word, of
    which one in 33 is checksum."""
    bits = 0
    for word in words:
        bits = bits << 11 | _INDEX[word]
    checksum_bits = len(words) * 11 // 33
    entropy = (bits >> checksum_bits).to_bytes(checksum_bits * 4, "big")
    return bits & ((1 << checksum_bits) - 1) == hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)


def seed(words: list[str], passphrase: str = "") -> bytes:
    """BIP-39: PBKDF2-HMAC-SHA512 of the phrase (NFKD), salted with "mnemonic" + the passphrase."""
    phrase = unicodedata.normalize("NFKD", " ".join(words)).encode()
    salt = ("mnemonic" + unicodedata.normalize("NFKD", passphrase)).encode()
    return hashlib.pbkdf2_hmac("sha512", phrase, salt, 2048)


def private_key(seed_bytes: bytes, path: str) -> bytes:
    """BIP-32: the private key at ``path`` ("m/44'/60'/0'/0/7"; ' marks a hardened step)."""
    digest = hmac.digest(b"Bitcoin seed", seed_bytes, "sha512")
    key, chain_code = digest[:32], digest[32:]
    for step in path.split("/")[1:]:
        index = int(step.rstrip("'")) + (_HARDENED if step.endswith("'") else 0)
        parent = b"\x00" + key if index >= _HARDENED else PrivateKey(key).public_key.format(compressed=True)
        digest = hmac.digest(chain_code, parent + index.to_bytes(4, "big"), "sha512")
        key = ((int.from_bytes(digest[:32], "big") + int.from_bytes(key, "big")) % _CURVE_ORDER).to_bytes(32, "big")
        chain_code = digest[32:]
    return key

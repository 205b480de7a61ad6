"""Worker keys, derived deterministically from a mnemonic and the worker's index.

The mnemonic comes from $LOADGEN_MNEMONIC or the file named by $LOADGEN_MNEMONIC_FILE; the
well-known dev mnemonic is used only on the embedded devnet. Keys stay in memory: nothing here
has a repr, log line or serialised form that contains a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.common.address import address_of
from loadgen.common.errors import UserError
from loadgen.config import hdkeys

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DERIVATION_PATH = "m/44'/60'/0'/0/{index}"


@dataclass(frozen=True)
class MnemonicSource:
    """Says where the secret comes from without holding it in a printable field."""

    origin: str  # "devnet", "env:LOADGEN_MNEMONIC" or "file:/path"
    _phrase: str = field(repr=False, compare=False)

    def phrase(self) -> str:
        return self._phrase


def mnemonic_source(devnet_phrase: str | None = None) -> MnemonicSource:
    if phrase := os.environ.get("LOADGEN_MNEMONIC"):
        return checked(MnemonicSource("env:LOADGEN_MNEMONIC", phrase.strip()), "LOADGEN_MNEMONIC")
    if path := os.environ.get("LOADGEN_MNEMONIC_FILE"):
        try:
            text = Path(path).read_text().strip()
        except OSError as e:
            raise UserError(f"LOADGEN_MNEMONIC_FILE={path} cannot be read ({e.strerror}); point it at a readable file") from None
        return checked(MnemonicSource(f"file:{path}", text), f"the phrase in LOADGEN_MNEMONIC_FILE={path}")
    if devnet_phrase is not None:
        return MnemonicSource("devnet", devnet_phrase)
    raise UserError(
        "no mnemonic for the workers' keys: set LOADGEN_MNEMONIC or LOADGEN_MNEMONIC_FILE (for a `loadgen devnet`, "
        "the export line it prints; the public test mnemonic is used unasked only on the embedded devnet)"
    )


def checked(source: MnemonicSource, named: str) -> MnemonicSource:
    """The source, once its phrase is a valid BIP-39 English mnemonic; else a one-line error
    that says what is wrong without a word of the phrase (eth-account's own error quotes it
    whole, and it would go to terminals, CI logs and Ray's logs)."""
    words = source.phrase().split()
    how = "its 12 to 24 words as the wallet that made it shows them"
    if len(words) not in hdkeys.VALID_LENGTHS:
        raise UserError(f"{named} is not a valid BIP-39 phrase ({len(words)} words given, 12, 15, 18, 21 or 24 expected): give {how}")
    if unknown := hdkeys.unknown_words(words):
        where = ", ".join(map(str, unknown))
        raise UserError(f"{named} is not a valid BIP-39 phrase (word {where} not in the English word list): give {how}")
    if not hdkeys.checksum_ok(words):
        raise UserError(f"{named} is not a valid BIP-39 phrase (bad checksum: a word mistyped or out of order?): give {how}")
    return source


@dataclass(frozen=True)
class Key:
    """One account of the mnemonic: its address, and its private key out of every repr."""

    address: str  # checksummed
    key: bytes = field(repr=False)

    def account(self) -> LocalAccount:
        """eth-account's form of it, for web3's contract calls (imported only then)."""
        from eth_account import Account

        return Account.from_key(self.key)


@lru_cache(maxsize=4)
def _seed(phrase: str) -> bytes:
    return hdkeys.seed(phrase.split())


def derive_account(source: MnemonicSource, index: int) -> Key:
    key = hdkeys.private_key(_seed(source.phrase()), DERIVATION_PATH.format(index=index))
    return Key(address_of(key), key)

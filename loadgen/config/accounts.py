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

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.hdaccount.mnemonic import Language, Mnemonic
from eth_account.signers.local import LocalAccount

from loadgen.common.errors import UserError

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


BIP39_LENGTHS = (12, 15, 18, 21, 24)


def checked(source: MnemonicSource, named: str) -> MnemonicSource:
    """The source, once its phrase is a valid BIP-39 English mnemonic; else a one-line error
    that says what is wrong without a word of the phrase (eth-account's own error quotes it
    whole, and it would go to terminals, CI logs and Ray's logs)."""
    words = source.phrase().split()
    how = "its 12 to 24 words as the wallet that made it shows them"
    if len(words) not in BIP39_LENGTHS:
        raise UserError(f"{named} is not a valid BIP-39 phrase ({len(words)} words given, 12, 15, 18, 21 or 24 expected): give {how}")
    bip39 = Mnemonic(Language.ENGLISH)
    unknown = [i + 1 for i, w in enumerate(words) if w not in bip39.wordlist]
    if unknown:
        where = ", ".join(map(str, unknown))
        raise UserError(f"{named} is not a valid BIP-39 phrase (word {where} not in the English word list): give {how}")
    if not bip39.is_mnemonic_valid(" ".join(words)):
        raise UserError(f"{named} is not a valid BIP-39 phrase (bad checksum: a word mistyped or out of order?): give {how}")
    return source


@lru_cache(maxsize=4)
def _seed(phrase: str) -> bytes:
    return seed_from_mnemonic(phrase, "")


def derive_account(source: MnemonicSource, index: int) -> LocalAccount:
    return Account.from_key(key_from_seed(_seed(source.phrase()), DERIVATION_PATH.format(index=index)))

"""loadgen's own BIP-39/BIP-32 derivation and EIP-55 addresses against eth-account's and
web3's, which stay the reference (the run no longer imports them)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.hdaccount.mnemonic import Language, Mnemonic
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from loadgen.chains.devnet import DEV_MNEMONIC
from loadgen.common.address import address_of, checksummed
from loadgen.config import hdkeys
from loadgen.config.accounts import DERIVATION_PATH, MnemonicSource, derive_account
from loadgen.config.bip39_english import WORDS

pytestmark = pytest.mark.unit

Account.enable_unaudited_hdwallet_features()
BIP39 = Mnemonic(Language.ENGLISH)


def test_the_word_list_is_the_standard_one():
    assert list(WORDS) == BIP39.wordlist


@settings(max_examples=25)
@given(st.sampled_from([12, 15, 18, 21, 24]), st.integers(0, 2**31 - 1), st.data())
def test_keys_and_addresses_equal_eth_accounts(num_words, index, data):
    phrase = BIP39.generate(num_words)
    passphrase = data.draw(st.sampled_from(["", "TREZOR", "pässwörd"]))
    expected_seed = seed_from_mnemonic(phrase, passphrase)
    assert hdkeys.seed(phrase.split(), passphrase) == expected_seed
    path = DERIVATION_PATH.format(index=index)
    key = hdkeys.private_key(expected_seed, path)
    assert key == key_from_seed(expected_seed, path)
    assert address_of(key) == Account.from_key(key).address


def test_the_dev_mnemonics_first_accounts_are_anvils():
    # Anvil's and Hardhat's well-known first two accounts of this phrase
    source = MnemonicSource("devnet", DEV_MNEMONIC)
    assert derive_account(source, 0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert derive_account(source, 1).address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert derive_account(source, 3).account().address == derive_account(source, 3).address


@settings(max_examples=200)
@given(st.sampled_from([12, 15, 18, 21, 24]).flatmap(lambda n: st.lists(st.sampled_from(WORDS), min_size=n, max_size=n)))
def test_the_checksum_is_judged_as_eth_account_judges_it(words):
    assert hdkeys.checksum_ok(words) == BIP39.is_mnemonic_valid(" ".join(words))


def test_a_generated_phrase_passes_and_a_swapped_word_mostly_fails():
    phrase = BIP39.generate(12).split()
    assert hdkeys.checksum_ok(phrase)
    assert hdkeys.unknown_words(phrase) == []
    assert hdkeys.unknown_words([*phrase[:11], "notaword"]) == [12]


@given(st.binary(min_size=20, max_size=20))
def test_checksummed_addresses_equal_web3s(raw):
    assert checksummed(raw.hex()) == Web3.to_checksum_address("0x" + raw.hex())
    assert checksummed("0x" + raw.hex().upper()) == Web3.to_checksum_address("0x" + raw.hex())


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "g" * 40, ""])
def test_a_malformed_address_is_refused(bad):
    with pytest.raises(ValueError, match="not an address"):
        checksummed(bad)

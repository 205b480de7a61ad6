"""What a transaction costs to sign and hash, the largest part of a chunk transaction's CPU.

    .venv/bin/python benchmarks/signing.py [--repeat 9]
    PYTHONPATH=<another checkout> .venv/bin/python <that checkout or this>/benchmarks/signing.py

Prints, in µs of this process's CPU (the best of ``--repeat`` rounds: what the code costs, not
what the machine's other work added), for a 1,000-value chunk transaction (32 kB of calldata)
and a value transfer: Keccak-256 through each binding installed (pycryptodome, eth-hash's
default; safe-pysha3, the Keccak team's code), and loadgen's ``Signer.sign`` with the
transaction's own hash, as a sender needs both. Run against another checkout (PYTHONPATH) to
compare signers: the script uses whichever ``loadgen.chains.signer`` comes first on the path.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen.chains import signer as signing

CHAIN_ID = 1337
SIZES = {"chunk (32 kB)": 4 + 32 * 1_000, "transfer": 0}


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    rounds = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        rounds.append((time.process_time() - start) / number)
    return min(rounds) * 1e6


def measure(name: str, data: bytes, signer: signing.Signer, repeat: int) -> None:
    from Crypto.Hash import keccak as cryptodome

    number = 200 if data else 5_000
    keccaks = {"pycryptodome": lambda: cryptodome.new(data=data, digest_bits=256).digest()}
    try:
        from sha3 import keccak_256

        keccaks["safe-pysha3"] = lambda: keccak_256(data).digest()
    except ImportError:  # a checkout from before loadgen depended on it
        pass
    for backend, fn in keccaks.items():
        print(f"{name}: keccak-256 of the calldata, {backend}: {best_us(fn, number, repeat):.1f} µs")
    to = bytes(20)
    sign = lambda: signer.sign(nonce=7, gas_price=1, gas=30_000_000, to=to, data=data).tx_hash  # noqa: E731
    print(f"{name}: Signer.sign and the transaction's hash: {best_us(sign, number, repeat):.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9, help="rounds; the best one is printed")
    args = parser.parse_args()
    print(f"loadgen.chains.signer from {Path(signing.__file__).resolve().parent.parent}")
    signer = signing.Signer(os.urandom(32), CHAIN_ID)
    for name, size in SIZES.items():
        measure(name, os.urandom(size), signer, args.repeat)


if __name__ == "__main__":
    main()

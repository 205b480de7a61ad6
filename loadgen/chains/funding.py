"""The workers' accounts topped up by the coordinator before a run, signed by loadgen's own
signer and sent through ``Node``: no web3 for a run that deploys nothing."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loadgen.chains.fees import Fees
from loadgen.chains.node import Node
from loadgen.chains.signer import Signer, sign_with
from loadgen.common.errors import UserError
from loadgen.config.accounts import Key

TRANSFER_GAS = 21_000


@dataclass(frozen=True)
class Funding:
    funder: str
    topped_up: int
    wei_each: int

    def to_dict(self) -> dict:
        return asdict(self)


def fund(node: Node, funder: Key, addresses: list[str], wei_each: int, fees: Fees, batch: int = 200) -> Funding:
    """Tops every address up to ``wei_each``: the transfers of a batch go out back to back with
    consecutive nonces, then the batch's receipts are awaited."""
    balances = [node.balance(a) for a in addresses]
    short = [(a, wei_each - b) for a, b in zip(addresses, balances, strict=True) if b < wei_each]
    need = sum(v for _, v in short) + TRANSFER_GAS * fees.worst_case_per_gas() * len(short)
    if short and node.balance(funder.address) < need:
        raise UserError(
            f"the funder {funder.address} (key index 0) holds too little to top up {len(short)} workers "
            f"({need} wei needed): fund it, or run the network at gas price 0"
        )
    nonce = node.pending_nonce(funder.address)
    signer = Signer(funder.key, node.chain_id())
    for i in range(0, len(short), batch):
        hashes = []
        for address, value in short[i : i + batch]:
            signed = sign_with(signer, fees, nonce=nonce, gas=TRANSFER_GAS, to=bytes.fromhex(address[2:]), data=b"", value=value)
            hashes.append(node.submit(signed.raw))
            nonce += 1
        failed = [r for r in node.wait_receipts(hashes, timeout_s=120) if int(r["status"], 16) != 1]
        if failed:
            raise UserError(f"{len(failed)} funding transfers failed, first {failed[0]['transactionHash']}")
    return Funding(funder.address, len(short), wei_each)

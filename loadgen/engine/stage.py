"""The stage a workload plays on (``loadgen.workloads.base.Stage``): the chain's connection and
coordinator, contracts deployed once per series, set-up calls, and the phases, which the run's
phase loop plays. Built once the run is set up, from what set-up made: nothing on it is unset."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from loadgen.chains.fees import Fees
from loadgen.common.address import checksummed
from loadgen.common.errors import ConfigError, UserError
from loadgen.config.accounts import derive_account
from loadgen.engine.plan import PhaseSpec, RunPlan, key_index
from loadgen.engine.rig import Rig
from loadgen.engine.session import ChainSession
from loadgen.engine.store import RunStore
from loadgen.workloads.base import Payload, Timed

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import TxReceipt

    from loadgen.chains.contracts import Artifact


def worker_addresses(session: ChainSession, plan: RunPlan, key_offset: int) -> list[str]:
    """The workers' accounts with keys from ``key_offset`` on (0.3 ms a key)."""
    return [derive_account(session.source, key_index(key_offset, w.worker)).address for w in plan.workers]


@dataclass(frozen=True)
class RunStage:
    session: ChainSession
    plan: RunPlan
    addresses: list[str]  # the workers' accounts, by worker index
    seed: int
    store: RunStore
    rig: Rig
    manifest: dict[str, Any]  # the run's manifest, written again as contracts are added
    records: dict[str, Any]  # what the workload records lands in summary.json
    shares_contracts: bool  # the workload's runs of a series may share its contracts
    on_event: Callable[[str], None]
    play_phase: Callable[[PhaseSpec, Payload, tuple[Timed, ...]], None]

    @property
    def w3(self) -> Web3:
        return self.session.w3

    @cached_property
    def coordinator(self) -> LocalAccount:
        return self.session.coordinator.account()

    @property
    def fees(self) -> Fees:
        return self.session.fees

    @property
    def phases(self) -> tuple[PhaseSpec, ...]:
        return self.plan.phases

    def deploy(self, artifact: Artifact, *args: Any) -> Contract:
        key = self._contract_key(artifact, args)
        known = self.rig.deployed(key) if key else None
        from loadgen.chains.contracts import deploy  # web3: only runs with contracts import it

        address = cast("ChecksumAddress", checksummed(known)) if known else None
        if address is not None and self.w3.eth.get_code(address):
            self.on_event(f"{artifact.name} at {address}, deployed by an earlier run of the series")
            contract = self.w3.eth.contract(address=address, abi=artifact.abi)
        else:
            self.on_event(f"deploying {artifact.name}…")
            contract = deploy(self.w3, self.coordinator, artifact, *args, fees=self.fees)
            if key:
                self.rig.remember(key, contract.address)
        return self._recorded(artifact, contract)

    def deployed_at(self, artifact: Artifact, address: str, field: str) -> Contract:
        at = cast("ChecksumAddress", checksummed(address))
        code = bytes(self.w3.eth.get_code(at))
        if code != artifact.runtime:
            what = "no code" if not code else f"code that is not this loadgen's {artifact.name}"
            fix = "remove it to deploy one, or give one that manifest.json's contracts name"
            raise ConfigError(field, f"{at} holds {what} on this chain", fix)
        self.on_event(f"{artifact.name} at {at}, from {field}")
        return self._recorded(artifact, self.w3.eth.contract(address=at, abi=artifact.abi))

    def _recorded(self, artifact: Artifact, contract: Contract) -> Contract:
        self.manifest.setdefault("contracts", {})[artifact.name] = contract.address
        self.store.write_json("manifest.json", self.manifest)
        return contract

    def _contract_key(self, artifact: Artifact, args: tuple[Any, ...]) -> str | None:
        """What names a contract the series' runs may share (see Rig); None: this run's own."""
        if not self.shares_contracts:
            return None
        return Rig.contract_key(self.session.info.chain_id, artifact.name, artifact.bytecode, args)

    def transact(self, contract: Contract, function: str, *args: Any) -> TxReceipt:
        from loadgen.chains.chain import send_transaction
        from loadgen.chains.contracts import calldata

        data = calldata(contract, function, *args)
        receipt = send_transaction(self.w3, self.coordinator, to=contract.address, data=data, fees=self.fees)
        if receipt["status"] != 1:
            raise UserError(f"the set-up call {function} on {contract.address} reverted (transaction {receipt['transactionHash'].hex()})")
        return receipt

    @property
    def handover(self) -> dict[Hashable, Any]:
        return self.rig.handover

    def next_addresses(self) -> list[str] | None:
        offset = self.rig.next_key_offset
        return None if offset is None else worker_addresses(self.session, self.plan, offset)

    def phase(self, phase: PhaseSpec, payload: Payload, during: tuple[Timed, ...] = ()) -> None:
        self.play_phase(phase, payload, during)

    def event(self, message: str) -> None:
        self.on_event(message)

    def record(self, key: str, value: Any) -> None:
        self.records[key] = value

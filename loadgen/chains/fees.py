"""What the workers' transactions pay: their type and their fees, resolved once at the start.

A run resolves a ``Fees`` from its configuration and the node (``resolve_fees``), then hands
it to the seams that need it: the funder budgets ``worst_case_per_gas()`` per unit of gas, the
senders sign with ``loadgen.chains.signer.sign_with``, the manifest records ``to_dict()``. The fees stay fixed for
the run, so that what a run measures is the chain and not a fee estimator. Nothing here uses
Ray, and only ``resolve_fees`` talks to a node.

When the configuration leaves an EIP-1559 fee out, it is derived from ``eth_feeHistory`` over
the last 10 blocks:

- priority fee: the median (the lower middle one) of the blocks' 50th-percentile rewards,
  counting only blocks that used gas (an empty block reports a reward of 0, which says nothing
  about what gets a transaction in); when no block used gas, the node's
  ``eth_maxPriorityFeePerGas``. A given max fee caps it, as the protocol requires.
- max fee: 2 × the next block's base fee + the priority fee. The base fee rises by at most
  12.5 % a block, so the transactions stay includable through six full blocks in a row
  (1.125⁶ ≈ 2.03), and a transaction never pays more than base fee + priority fee.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import median_low
from typing import TYPE_CHECKING, Literal

from loadgen.chains.node import RpcError
from loadgen.common.errors import ConfigError

if TYPE_CHECKING:
    from loadgen.chains.node import Node

TxType = Literal["legacy", "eip1559"]
TX_TYPES: tuple[TxType, ...] = ("legacy", "eip1559")

HISTORY_BLOCKS = 10
REWARD_PERCENTILE = 50
BASE_FEE_HEADROOM = 2


@dataclass(frozen=True)
class Fees:
    """A legacy gas price, or an EIP-1559 max fee and priority fee; the other fields are None."""

    tx_type: TxType
    gas_price: int | None = None
    max_fee: int | None = None
    priority_fee: int | None = None

    def __post_init__(self) -> None:
        if self.tx_type == "legacy":
            ok = self.gas_price is not None and self.max_fee is None and self.priority_fee is None
        elif self.tx_type == "eip1559":
            ok = self.gas_price is None and self.max_fee is not None and self.priority_fee is not None and self.priority_fee <= self.max_fee
        else:
            ok = False
        if not ok or any(v is not None and v < 0 for v in (self.gas_price, self.max_fee, self.priority_fee)):
            raise ValueError(f"inconsistent fees: {self}")

    @classmethod
    def legacy(cls, gas_price: int) -> Fees:
        return cls("legacy", gas_price=gas_price)

    @classmethod
    def eip1559(cls, *, max_fee: int, priority_fee: int) -> Fees:
        return cls("eip1559", max_fee=max_fee, priority_fee=priority_fee)

    def worst_case_per_gas(self) -> int:
        """What an account must hold per unit of gas it may burn: the base fee is not known ahead."""
        per_gas = self.gas_price if self.tx_type == "legacy" else self.max_fee
        assert per_gas is not None  # __post_init__ checked the type's fees are there
        return per_gas

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_fees(node: Node, tx_type: str, gas_price: int | None, max_fee: int | None, priority_fee: int | None) -> Fees:
    """The run's fees: the given ones, the rest from the node (see the module's docstring).

    Raises ConfigError when the configuration cannot work on this node, naming the field.
    """
    for name, value in (("gas_price", gas_price), ("max_fee", max_fee), ("priority_fee", priority_fee)):
        if value is not None and value < 0:
            raise ConfigError(f"chain.{name}", f"{value} is negative", "use 0 or more wei")
    if tx_type == "legacy":
        for name, value in (("max_fee", max_fee), ("priority_fee", priority_fee)):
            if value is not None:
                raise ConfigError(f"chain.{name}", "applies to tx_type: eip1559 only", "remove it, or use tx_type: eip1559")
        return Fees.legacy(node.gas_price() if gas_price is None else gas_price)
    if tx_type != "eip1559":
        raise ConfigError("chain.tx_type", f"{tx_type!r} is not a transaction type", f"use one of {', '.join(TX_TYPES)}")
    if gas_price is not None:
        raise ConfigError("chain.gas_price", "applies to tx_type: legacy only", "use chain.max_fee and chain.priority_fee")
    if max_fee is not None and priority_fee is not None and priority_fee > max_fee:
        raise ConfigError("chain.priority_fee", f"{priority_fee} is above chain.max_fee ({max_fee})", "lower it or raise the max fee")

    if node.block().get("baseFeePerGas") is None:
        raise ConfigError(
            "chain.tx_type",
            "eip1559 needs a chain with a base fee (London or later), and this node's blocks have none "
            "(a pre-London chain: GoQuorum, or geth with a Berlin genesis)",
            "use tx_type: legacy",
        )
    base_fee, rewards = _fee_history(node)
    if max_fee is not None and max_fee < base_fee:
        raise ConfigError(
            "chain.max_fee", f"{max_fee} is below the next block's base fee ({base_fee}): nothing would be included", "raise it"
        )
    if priority_fee is None:
        priority_fee = median_low(rewards) if rewards else int(node.call("eth_maxPriorityFeePerGas"), 16)
        if max_fee is not None:
            priority_fee = min(priority_fee, max_fee)
    if max_fee is None:
        max_fee = BASE_FEE_HEADROOM * base_fee + priority_fee
    return Fees.eip1559(max_fee=max_fee, priority_fee=priority_fee)


def _fee_history(node: Node) -> tuple[int, list[int]]:
    """The next block's base fee, and the rewards of the recent blocks that used gas."""
    try:
        history = node.call("eth_feeHistory", hex(HISTORY_BLOCKS), "latest", [REWARD_PERCENTILE])
    except RpcError:
        # a London node without eth_feeHistory: the head's base fee is off by at most 12.5 %
        return int(node.block()["baseFeePerGas"], 16), []
    used = zip(history["gasUsedRatio"], history.get("reward") or [], strict=False)
    return int(history["baseFeePerGas"][-1], 16), [int(reward[0], 16) for ratio, reward in used if ratio > 0]

"""Before a phase: its gas limit from the chain, and one of its transactions tried on the node.

A formula fitted to one fork misjudges another (a 32 kB reveal chunk costs about 1.3M gas on a
Prague chain, whose EIP-7623 calldata floor the study's 100,000 + 700 per value never met; such a
transaction is accepted by the node and then silently discarded). So, unless the experiment fixes
the gas limit, each phase gets the node's estimate of its first transaction with a margin, capped
by the block gas limit; and the first transaction is simulated (``eth_call``) with the phase's
limit. What would make every transaction of the phase fail without measuring anything (a gas
floor, an oversized transaction, a revert with a reason) refuses the run in one line. Running out
of gas under a limit the experiment fixed is what the study's Fig. 1 measures: said, not refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from loadgen.chains.node import Node, RpcError
from loadgen.common.errors import UserError
from loadgen.engine.plan import PhaseSpec, WorkerSpec
from loadgen.workloads.base import Call, Payload

GAS_HEADROOM = 1.3  # over the node's estimate of the first transaction: later ones may cost a little more
TRIED_WORKERS = 3  # a phase is refused only when the first transaction of each of these would fail

# what a node says when no transaction like this one can ever be included
_NEVER = ("intrinsic gas", "gasfloor", "floor data gas", "oversized", "too large", "exceeds block gas limit", "max initcode")


class PhaseRefused(UserError):
    """The node says none of a phase's transactions could be included: nothing to measure."""


@dataclass(frozen=True)
class Verdict:
    refuse: bool
    cause: str


def judge(message: str) -> Verdict:
    """Whether a node's objection to a simulated transaction dooms the whole phase."""
    lowered = message.lower()
    if any(s in lowered for s in _NEVER):
        return Verdict(True, message)
    reason = _revert_reason(message)
    if reason:
        return Verdict(True, f"reverts: {reason}")
    return Verdict(False, message)


def _revert_reason(message: str) -> str:
    """The reason of 'execution reverted: <reason>', if the contract gave one."""
    if "execution reverted" not in message:
        return ""
    reason = message.partition("execution reverted")[2].lstrip(":, ").strip().strip("'\"")
    return reason if reason and not reason.startswith("0x") and reason.lower() != "none" else ""


@dataclass(frozen=True)
class Checked:
    phase: PhaseSpec  # with the gas limit the transactions get
    lines: tuple[str, ...]  # what the run says about it


_ERROR_STRING = "0x08c379a0"  # the selector of Error(string), what `revert("reason")` returns


def _message(error: Exception) -> str:
    """The node's words; for a revert with data, the reason a contract gave as Error(string),
    else the data alone (a custom error or a panic depends on the chain's state, which later
    transactions may change: not a reason to refuse the phase)."""
    if isinstance(error, RpcError) and isinstance(error.data, str) and len(error.data) > 2:
        if not error.data.startswith(_ERROR_STRING):
            return error.data
        encoded = bytes.fromhex(error.data[len(_ERROR_STRING) :])
        try:
            length = int.from_bytes(encoded[32:64], "big")
            return f"execution reverted: {encoded[64 : 64 + length].decode()}"
        except (UnicodeDecodeError, ValueError):
            return error.data
    return str(error)


def check_phase(
    node: Node, phase: PhaseSpec, payload: Payload, workers: tuple[WorkerSpec, ...], addresses: list[str], block_gas_limit: int
) -> Checked:
    """The phase's gas limit (the node's estimate unless fixed) and a simulation of its first
    transaction by up to TRIED_WORKERS workers; raises PhaseRefused when each would fail."""
    builder = payload.builder()
    tried = [w for w in workers if phase.items[w.worker]][:TRIED_WORKERS]
    calls: list[tuple[str, Call]] = [(addresses[w.worker], builder.call(w, addresses[w.worker], 0)) for w in tried]
    lines: list[str] = []
    if not phase.gas_fixed and calls:
        sender, call = calls[0]
        try:
            estimate = int(node.call("eth_estimateGas", _params(sender, call)), 16)
        except Exception as e:  # the node objects: the simulation below says whether it matters
            lines.append(f"{phase.name}: the node gives no gas estimate ({_message(e)}); each transaction keeps {phase.gas_limit:,}")
        else:
            gas = min(int(estimate * GAS_HEADROOM), block_gas_limit)
            lines.append(f"{phase.name}: the node estimates {estimate:,} gas for the first transaction, each gets {gas:,}")
            phase = replace(phase, gas_limit=gas)
    objections: list[str] = []
    for sender, call in calls:
        try:
            node.call("eth_call", _params(sender, call) | {"gas": hex(phase.gas_limit)}, "latest")
            break
        except Exception as e:
            objections.append(_message(e))
    else:
        if objections:
            verdict = judge(objections[0])
            if verdict.refuse:
                raise PhaseRefused(
                    f"phase {phase.name}: the node would not include its transactions ({verdict.cause}) at gas limit "
                    f"{phase.gas_limit:,}: {_fix(phase)}"
                )
            lines.append(f"{phase.name}: the node says its first transaction fails ({verdict.cause}): measured as it comes")
    return Checked(phase, tuple(lines))


def _params(sender: str, call: Call) -> dict[str, Any]:
    return {"from": sender, "to": "0x" + call.to.hex(), "data": "0x" + call.data.hex(), "value": hex(call.value)}


def _fix(phase: PhaseSpec) -> str:
    if phase.gas_fixed:
        return "raise chain.gas_limit (or the workload's gas_limit), or remove it to take the node's estimate"
    return "check the workload's arguments and set-up calls, and the chain's limits"

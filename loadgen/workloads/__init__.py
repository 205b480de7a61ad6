"""Workloads as plug-ins: see ``base`` for the interface and ``registry`` for how kinds are found."""

from loadgen.workloads import array_copy, contract_call, transfer  # noqa: F401  (they register)
from loadgen.workloads.base import Call, CallBuilder, Payload, Stage, Workload, WorkloadConfig
from loadgen.workloads.fl_round import workload as fl_round  # noqa: F401  (it registers)
from loadgen.workloads.registry import WORKLOADS, load_plugins, register, workload_of

__all__ = ["WORKLOADS", "Call", "CallBuilder", "Payload", "Stage", "Workload", "WorkloadConfig", "load_plugins", "register", "workload_of"]

"""Workload kinds by name. Built-in workloads register when ``loadgen.workloads`` is imported;
a workload in another package registers through the entry point group ``loadgen.workloads``
(``kind = "package.module"``), so it needs no change to loadgen at all. The entry points are
read only when a name is not a built-in one: reading them means reading every installed
package's metadata (a twentieth of a second, every run)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

from loadgen.workloads.base import Workload, WorkloadConfig

WORKLOADS: dict[str, type[Workload]] = {}

W = TypeVar("W", bound=type[Workload])


def register(cls: W) -> W:
    if cls.kind in WORKLOADS and WORKLOADS[cls.kind] is not cls:
        raise ValueError(f"two workloads are called {cls.kind!r}: {WORKLOADS[cls.kind].__module__} and {cls.__module__}")
    WORKLOADS[cls.kind] = cls
    return cls


_plugins_loaded = False


def load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for entry in entry_points(group="loadgen.workloads"):
            entry.load()


def workload_of(config: WorkloadConfig) -> Workload:
    return WORKLOADS[config.kind](config)

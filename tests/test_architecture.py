"""The folders say the architecture, and docs/architecture.md says the folders: read from the
source itself (its imports and its sizes), so that a change that breaks the layering fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loadgen.common.paths import REPO_ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("loadgen", "actors")
# the typed records that cross Ray between the actors and the driver; only the modules that
# start the actors (the fleet, its watchers and their hosts) import more of ``actors/``
CONTRACT = {"actors.stats"}
STARTERS = {
    "loadgen.engine.fleet",
    "loadgen.engine.watchers",
    "loadgen.engine.hosting.base",
    "loadgen.engine.hosting.ray_host",
    "loadgen.engine.hosting.in_process",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found[".".join(p for p in parts if p != "__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The modules a file imports (``from x import y`` gives x.y where that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names}
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


def test_every_module_of_loadgen_is_inside_a_subsystem_package():
    loose = [p.name for p in (REPO_ROOT / "loadgen").glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == []


def test_no_file_is_over_400_lines_and_no_class_over_250():
    long_files = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 400}
    long_classes = {
        f"{name}.{node.name}": size
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and (size := (node.end_lineno or node.lineno) - node.lineno + 1) > 250
    }
    assert (long_files, long_classes) == ({}, {})


def test_the_driver_imports_of_the_actors_only_their_records_except_where_it_starts_them():
    crossing = {
        name: sorted(i for i in _imports(path) if _top(i) == "actors" and i not in CONTRACT)
        for name, path in MODULES.items()
        if _top(name) == "loadgen" and name not in STARTERS
    }
    assert {name: got for name, got in crossing.items() if got} == {}


def test_the_actors_import_only_loadgen_modules_that_need_neither_ray_nor_the_actors():
    used = {i for name, path in MODULES.items() if _top(name) == "actors" for i in _imports(path) if _top(i) == "loadgen"}
    assert used, "the actors build on loadgen's plan and fees"
    impure = {m: sorted(i for i in _imports(MODULES[m]) if _top(i) in ("ray", "actors")) for m in used if m in MODULES}
    assert {m: got for m, got in impure.items() if got} == {}


def test_the_architecture_page_names_every_subsystem_and_only_files_that_exist():
    page = (REPO_ROOT / "docs" / "architecture.md").read_text()
    subsystems = sorted(p.name for p in (REPO_ROOT / "loadgen").iterdir() if (p / "__init__.py").exists())
    assert [s for s in subsystems if f"`{s}/`" not in page and f"loadgen/{s}/" not in page] == []
    named = set(re.findall(r"\b((?:loadgen|actors|engine|chains|study|report|workloads|cli|config|common)/[\w/]+\.py)\b", page))
    assert named, "the page names the files of the data path"
    missing = [n for n in named if not any(p.as_posix().endswith(n) for p in MODULES.values())]
    assert missing == []

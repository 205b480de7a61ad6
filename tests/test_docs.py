"""The README and the guide (docs/): the README stays a front page, every command block that
names an experiment file names one that loads (and a `loadgen run` previews as `--dry-run`
would), the configuration reference covers every key a config has, and the guide builds
strictly (every link and anchor resolves)."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadgen.common.errors import UserError
from loadgen.config import schema as config
from loadgen.config.reference import sections
from loadgen.engine.preview import preview

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SHELL = {"sh", "bash", "shell", "console"}
COMMAND = re.compile(r"\bloadgen (run|search|sweep) ")


@dataclass(frozen=True)
class Command:
    page: str
    verb: str  # run, search or sweep
    path: str
    overrides: tuple[str, ...]  # --set KEY=VALUE, and a sweep's first value of --vary

    def __str__(self) -> str:
        return f"{self.page}: loadgen {self.verb} {self.path} {' '.join(self.overrides)}".strip()


def commands(page: Path) -> list[Command]:
    """`loadgen run|search|sweep CONFIG …` in the page's shell blocks, continuation lines joined."""
    found = []
    for language, body in FENCE.findall(page.read_text()):
        if language not in SHELL:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if not COMMAND.search(line):
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # a quote opened on this line and closed on a later one
                words = line.split()
            at = next(i for i, w in enumerate(words) if w.endswith("loadgen") and words[i + 1 : i + 2] in (["run"], ["search"], ["sweep"]))
            verb, args = words[at + 1], words[at + 2 :]
            path = next(a for a in args if not a.startswith("-"))
            overrides = []
            for flag, value in itertools.pairwise(args):
                if flag == "--set":
                    overrides.append(value)
                elif flag == "--vary":
                    key, _, values = value.partition("=")
                    overrides.append(f"{key}={values.split(',')[0]}")
            found.append(Command(str(page.relative_to(REPO)), verb, path, tuple(overrides)))
    return found


ALL = [c for page in PAGES for c in commands(page)]


def _kind(command: Command) -> str | None:
    try:
        return config.load(REPO / command.path).workload.kind
    except (UserError, OSError):
        return None


def _params() -> list[Any]:
    """A `loadgen run` of a contract-call experiment compiles its contract (solc, in node) when
    previewed: that one is a subprocess test; the rest are pure."""
    return [
        pytest.param(c, id=str(c), marks=pytest.mark.subprocess if c.verb == "run" and _kind(c) == "contract-call" else pytest.mark.unit)
        for c in ALL
    ]


@pytest.mark.unit
def test_the_pages_have_commands_to_check():
    assert {c.page for c in ALL} >= {"README.md", "docs/runs.md", "docs/searches.md", "docs/study.md", "docs/networks.md"}
    assert {c.verb for c in ALL} == {"run", "search", "sweep"}


@pytest.mark.parametrize("command", _params())
def test_a_command_names_an_experiment_that_loads(command: Command):
    path = REPO / command.path
    assert path.is_file(), f"{command}: no such file"
    experiment = config.load(path, config.parse_overrides(list(command.overrides)))
    if command.verb == "run":
        plan, lines = preview(experiment)
        assert plan.transactions > 0 and lines


@pytest.mark.unit
def test_the_readme_is_a_front_page_with_the_two_commands_first():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    first_section = readme.split("\n## ", 2)[1]
    assert first_section.startswith("Two commands\n")
    language, block = FENCE.findall(readme)[0]
    assert language == "sh" and block in first_section
    assert [line.split()[:2] for line in block.splitlines()] == [["make", "run"], ["make", "test"]]


@pytest.mark.unit
def test_the_readme_says_how_long_the_tests_take_and_that_external_endpoints_need_a_mnemonic():
    readme = (REPO / "README.md").read_text()
    assert "about **20 minutes** on 2 cores" in readme and "in about **30 s**" in readme
    mnemonic = readme.index("LOADGEN_MNEMONIC")
    assert mnemonic < readme.index("## A run, annotated")
    assert "export LOADGEN_MNEMONIC=" in readme and "--endpoints http://127.0.0.1:8545" in readme


@pytest.mark.unit
def test_no_page_holds_a_private_key_or_another_mnemonic():
    from loadgen.chains.devnet import DEV_MNEMONIC

    for page in PAGES:
        text = page.read_text()
        assert not re.search(r"\b(0x)?[0-9a-fA-F]{64}\b", text), f"{page.name} holds a 32-byte hex string"
        for quoted in re.findall(r"LOADGEN_MNEMONIC=['\"]([^'\"]*)['\"]", text):
            assert quoted in (DEV_MNEMONIC, "…"), f"{page.name}: a mnemonic other than the public test one"


def _flat(value: Any, prefix: str) -> set[str]:
    if isinstance(value, dict):
        return {k for key, v in value.items() for k in _flat(v, f"{prefix}.{key}" if prefix else key)}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {prefix} | {k for v in value for k in _flat(v, prefix + "[]")}
    return {prefix}


@pytest.mark.unit
def test_the_configuration_reference_covers_every_key_of_every_shipped_config():
    tables, unions = sections()
    keys = {row.key for rows in tables.values() for row in rows}
    for tag, union in unions.items():
        keys |= {f"{path}.{row.key}" for path in union.paths for _, row in union.rows()} | {f"{p}.{tag}" for p in union.paths}
    files = [p for p in sorted((REPO / "configs").rglob("*.yaml")) if "cluster" not in p.parts]
    assert len(files) >= 10
    for path in files:
        resolved = config.to_public_dict(config.load(path))
        assert _flat(resolved, "") <= keys, f"{path.name}: keys the reference lacks: {_flat(resolved, '') - keys}"


@pytest.mark.subprocess
def test_the_guide_builds_strictly_with_the_reference_in_place(tmp_path):
    """Strict: a broken link, a missing anchor or a page left out of the nav fails the build
    (not --quiet: MkDocs then stops counting warnings)."""
    site = tmp_path / "site"
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    done = subprocess.run(build, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    reference = (site / "configuration.html").read_text()
    tables, _ = sections()
    for rows in tables.values():
        for row in rows:
            assert f"<code>{row.key}</code>" in reference
    for page in sorted((REPO / "docs").glob("*.md")):
        assert (site / page.with_suffix(".html").name).is_file()

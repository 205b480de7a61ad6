"""The `loadgen` command. Each subcommand lives in its own module with add_parser() and run()."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import Any, NoReturn

from loadgen import __version__
from loadgen.common.errors import UserError
from loadgen.engine import signals

INTERNAL_ERROR = 3
# each imported only when it is the one asked for: a short run's largest cost is importing
# (BENCHMARKS.md), and the other commands' modules would add to it for nothing
COMMANDS = ("run", "search", "sweep", "report", "estimate", "import", "devnet")
MODULES = {"import": "imports"}


EXAMPLES = """examples:
  loadgen run configs/quickstart.yaml       # a round on a local 4-node network
  loadgen report runs/RUN_ID                # its tables, figures and report.html
  loadgen COMMAND --help                    # a command's options and examples
"""


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it says it already. The description is
    filled to the terminal's width; the examples (an epilog starting "examples:") keep their lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return text
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line and exit 2, like every other user error
        # a subcommand's prog is "loadgen run": the pointer goes to the help that names the option
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n")


def one_line(text: str) -> str:
    """A message as one printable line: what the user typed may hold newlines or control characters."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def lost_actor(e: Exception) -> str | None:
    """A Ray actor lost beyond what loadgen recovers from, as one plain line: which actor and
    why (Ray's own message spans lines of ``key: value`` details). None for other errors."""
    if not any(c.__module__.startswith("ray.") and "Actor" in c.__name__ for c in type(e).__mro__):
        return None
    text = str(e)
    name = re.search(r"class_name: (\w+)", text)
    why = re.search(r"The actor (?:is dead|died) because ([^\n]*?)(?:\.|$)", text, re.MULTILINE)
    actor = f"its {name.group(1)} actor" if name else "an actor"
    return f"Ray lost {actor}: {why.group(1) if why else one_line(text.splitlines()[0])[:200]}"


def command(name: str) -> ModuleType:
    return importlib.import_module(f"loadgen.cli.{MODULES.get(name, name)}")


def chosen(argv: list[str]) -> str | None:
    """The command argv names, when it names one before anything the parser must explain."""
    for word in argv:
        if word in ("-h", "--help", "--version"):
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(commands: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loadgen",
        description="Distributed load testing for GoQuorum and other Ethereum-compatible permissioned chains.",
        epilog=EXAMPLES,
    )
    parser.add_argument("--version", action="version", version=f"loadgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an unexpected error, show the traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in commands:
        command(name).add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    name = chosen(words)
    parser = build_parser([name] if name else COMMANDS)
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return 2
    signals.install()
    try:
        return command(args.command).run(args)
    except UserError as e:
        print(f"loadgen: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("loadgen: interrupted", file=sys.stderr)
        return signals.exit_code()
    except Exception as e:  # a bug or an unforeseen failure: one line and its own code (1 means "below threshold")
        if args.debug:
            raise
        if lost := lost_actor(e):
            print(f"loadgen: error: {lost} (--debug shows where)", file=sys.stderr)
            return INTERNAL_ERROR
        print(f"loadgen: internal error: {type(e).__name__}: {one_line(str(e))[:300]} (--debug shows where)", file=sys.stderr)
        return INTERNAL_ERROR

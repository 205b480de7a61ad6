"""`loadgen import diablo RESULT.json ... --out DIR`: other tools' results as loadgen runs, so
`report`, tables and plots work on them."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadgen.report.diablo import CAVEATS, import_file

EXAMPLES = r"""examples:
  loadgen import diablo results/*.json --out runs/
  loadgen import diablo RESULT.json --threshold 0.9
  loadgen report runs/diablo-RESULT   # report on it like on a loadgen run
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="import another tool's results (diablo)", description=__doc__, epilog=EXAMPLES)
    tools = p.add_subparsers(dest="tool", metavar="TOOL", required=True, parser_class=type(p))
    d = tools.add_parser("diablo", help="Diablo result JSON files (the study's tool)", description=__doc__, epilog=EXAMPLES)
    d.add_argument("files", nargs="+", type=Path, metavar="RESULT.json", help="Diablo's result files")
    d.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR", help="folder the run folders go in")
    d.add_argument("--threshold", type=float, default=0.85, help="commit ratio a run must reach")


def run(args: argparse.Namespace) -> int:
    for path in args.files:
        run_dir = import_file(path, args.out, args.threshold)
        print(f"{path} → {run_dir}  (loadgen report {run_dir})")
    for caveat in CAVEATS:
        print(f"caveat: {caveat}")
    return 0

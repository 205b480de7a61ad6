"""`loadgen estimate`: the study's training-time table (its 4.4) for a given or measured pace.
`--json` prints the rows as JSON instead."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from loadgen.cli import types
from loadgen.cli.report import whole_console
from loadgen.study.estimate import STUDY_PACE_S, STUDY_ROWS, estimate, pace_from, parse_row

EXAMPLES = r"""examples:
  loadgen estimate                                  # the study's table at its pace
  loadgen estimate --pace 0.5 --chunk-size 10000
  loadgen estimate --from searches/20261125-120316-quickstart
  loadgen estimate --model resnet:11000000:90 --only --json
"""


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="training time from a minimum pace (the study's 4.4)", description=__doc__, epilog=EXAMPLES)
    p.add_argument("--pace", type=types.positive_seconds, help=f"seconds between a worker's chunks (default: the study's {STUDY_PACE_S})")
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="take the minimum pace from a search or sweep folder (default: none: --pace)",
    )
    p.add_argument("--chunk-size", type=int, default=1_000, help="parameters per chunk (default: 1000)")
    p.add_argument("--commit-phase", type=float, default=0.0, help="seconds the commit phase adds to each epoch (default: 0)")
    p.add_argument(
        "--model", action="append", default=[], metavar="NAME:PARAMETERS:EPOCHS", help="add a row; repeat for several (default: none)"
    )
    p.add_argument("--only", action="store_true", help="only the --model rows, not the study's")
    p.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    console = whole_console(stderr=args.json)
    where = None
    if args.source is not None:
        pace, where = pace_from(args.source)
        console.print(f"minimum pace {pace:g} s from {where}", soft_wrap=True)
    else:
        pace = args.pace if args.pace is not None else STUDY_PACE_S
    rows = [
        estimate(r, pace, args.chunk_size, args.commit_phase)
        for r in ([] if args.only else list(STUDY_ROWS)) + [parse_row(m) for m in args.model]
    ]
    if args.json:
        out = {"pace_s": pace, "pace_from": where, "chunk_size": args.chunk_size, "commit_phase_s": args.commit_phase}
        json.dump(out | {"rows": [asdict(r) for r in rows]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = Table(title=f"training time at a pace of {pace:g} s, chunks of {args.chunk_size:,}")
    for col in ("model", "parameters", "epochs", "chunks / epoch", "training time", "the study said"):
        # fold, never "…": a narrow terminal breaks a value over lines but shows all of it
        table.add_column(col, justify="left" if col == "model" else "right", overflow="fold")
    for r in rows:
        table.add_row(r.model, f"{r.parameters:,}", f"{r.epochs:,}", f"{r.chunks_per_epoch:,}", r.training, r.study_says or "–")
    console.print(table)
    if not args.only and args.chunk_size == 1_000 and pace == STUDY_PACE_S:
        console.print(
            "The study's BERT and GPT-3 figures are ten times smaller than its own formula gives "
            + "with chunks of 1,000: they match chunks of 10,000."
        )
    return 0

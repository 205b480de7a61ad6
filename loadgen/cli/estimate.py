"""`loadgen estimate`: the study's training-time table (its 4.4) for a given or measured pace."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from loadgen.cli import types
from loadgen.estimate import STUDY_PACE_S, STUDY_ROWS, human, pace_from, parse_row, training_seconds


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="training time from a minimum pace (the study's 4.4)", description=__doc__)
    p.add_argument("--pace", type=types.positive_seconds, help=f"seconds between a worker's chunks (default: the study's {STUDY_PACE_S})")
    p.add_argument("--from", dest="source", type=Path, help="take the minimum pace from a search or sweep folder")
    p.add_argument("--chunk-size", type=int, default=1_000, help="parameters per chunk (default 1000)")
    p.add_argument("--commit-phase", type=float, default=0.0, help="seconds the commit phase adds to each epoch (default 0)")
    p.add_argument("--model", action="append", default=[], metavar="NAME:PARAMETERS:EPOCHS", help="add a row")
    p.add_argument("--only", action="store_true", help="only the --model rows, not the study's")


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.source is not None:
        pace, where = pace_from(args.source)
        console.print(f"minimum pace {pace:g} s from {where}")
    else:
        pace = args.pace if args.pace is not None else STUDY_PACE_S
    rows = ([] if args.only else list(STUDY_ROWS)) + [parse_row(m) for m in args.model]
    table = Table(title=f"training time at a pace of {pace:g} s, chunks of {args.chunk_size:,}")
    for col in ("model", "parameters", "epochs", "chunks / epoch", "training time", "the study said"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in rows:
        seconds = training_seconds(row, pace, args.chunk_size, args.commit_phase)
        chunks = -(-row.parameters // args.chunk_size)
        table.add_row(row.name, f"{row.parameters:,}", f"{row.epochs:,}", f"{chunks:,}", human(seconds), row.study_says or "–")
    console.print(table)
    if not args.only and args.chunk_size == 1_000 and pace == STUDY_PACE_S:
        console.print(
            "The study's BERT and GPT-3 figures are ten times smaller than its own formula gives "
            + "with chunks of 1,000: they match chunks of 10,000."
        )
    return 0

"""The study's 4.4: how long training takes when every epoch reveals the whole model on chain.

time = epochs × (commit phase + chunks × pace), chunks = ⌈parameters / chunk size⌉. The study
assumed a pace of 0.25 s. Its table reads 7 hours, 8 years and 1,400 years; the arithmetic with
chunks of 1,000 gives 6.9 hours, 79 years and 13,864 years: its BERT and GPT-3 rows match
chunks of 10,000 instead. ``loadgen estimate`` prints both so the difference is visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from loadgen.common.errors import UserError
from loadgen.workloads.fl_round.model import chunk_count

STUDY_PACE_S = 0.25


@dataclass(frozen=True)
class ModelRow:
    name: str
    parameters: int
    epochs: int
    study_says: str = ""


STUDY_ROWS = (
    ModelRow("CNN for MNIST", 1_000_000, 100, "7 hours"),
    ModelRow("BERT", 100_000_000, 100_000, "8 years"),
    ModelRow("GPT-3", 175_000_000_000, 10_000, "1400 years"),
)

MINUTE, HOUR, DAY, YEAR = 60, 3_600, 86_400, 365.25 * 86_400


def training_seconds(row: ModelRow, pace_s: float, chunk_size: int, commit_phase_s: float = 0.0) -> float:
    return row.epochs * (commit_phase_s + chunk_count(row.parameters, chunk_size) * pace_s)


@dataclass(frozen=True)
class Estimate:
    """One row of the table (and of `loadgen estimate --json`)."""

    model: str
    parameters: int
    epochs: int
    chunks_per_epoch: int
    training_s: float
    training: str
    study_says: str | None


def estimate(row: ModelRow, pace_s: float, chunk_size: int, commit_phase_s: float = 0.0) -> Estimate:
    seconds = training_seconds(row, pace_s, chunk_size, commit_phase_s)
    chunks = chunk_count(row.parameters, chunk_size)
    return Estimate(row.name, row.parameters, row.epochs, chunks, seconds, human(seconds), row.study_says or None)


def human(seconds: float) -> str:
    for unit, size in (("years", YEAR), ("days", DAY), ("hours", HOUR), ("minutes", MINUTE)):
        if seconds >= size:
            value = seconds / size
            return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    return f"{seconds:.1f} seconds"


def parse_row(text: str) -> ModelRow:
    """NAME:PARAMETERS:EPOCHS, e.g. ResNet-50:25600000:90."""
    parts = text.rsplit(":", 2)
    try:
        name, parameters, epochs = parts[0], int(float(parts[1])), int(float(parts[2]))
    except (IndexError, ValueError):
        raise UserError(f"--model {text!r}: write NAME:PARAMETERS:EPOCHS, e.g. ResNet-50:25600000:90") from None
    if parameters <= 0 or epochs <= 0:
        raise UserError(f"--model {text!r}: parameters and epochs must be positive")
    return ModelRow(name, parameters, epochs)


def pace_from(folder: Path) -> tuple[float, str]:
    """The minimum pace a search (search.json) or a sweep (sweep.json) found."""
    for name in ("search.json", "sweep.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            if name == "search.json":
                pace = data.get("min_pace_s")
            else:
                found = [s["min_pace_s"] for s in data.get("searches", []) if s.get("min_pace_s") is not None]
                pace = max(found) if found else None  # the slowest one is the one every value passes at
            if pace is None:
                raise UserError(f"{path} holds no minimum pace (the search did not finish): give --pace instead")
            return float(pace), str(path)
    raise UserError(f"{folder} holds no search.json or sweep.json: point --from at a search or sweep folder")

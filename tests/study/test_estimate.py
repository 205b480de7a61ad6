"""The study's training-time arithmetic (its 4.4), exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from loadgen.common.errors import UserError
from loadgen.study.estimate import STUDY_ROWS, YEAR, ModelRow, human, pace_from, parse_row, training_seconds

CNN, BERT, GPT3 = STUDY_ROWS


@pytest.mark.unit
def test_study_rows_are_exact():
    assert training_seconds(CNN, 0.25, 1_000) == 100 * 1_000 * 0.25 == 25_000
    assert training_seconds(BERT, 0.25, 1_000) == 100_000 * 100_000 * 0.25
    assert training_seconds(GPT3, 0.25, 1_000) == 10_000 * 175_000_000 * 0.25


@pytest.mark.unit
def test_the_studys_big_rows_match_chunks_of_ten_thousand():
    assert human(training_seconds(CNN, 0.25, 1_000)) == "6.9 hours"  # the study: 7 hours
    assert round(training_seconds(BERT, 0.25, 10_000) / YEAR) == 8  # the study: 8 years
    assert round(training_seconds(GPT3, 0.25, 10_000) / YEAR, -2) == 1_400  # the study: 1400 years


@pytest.mark.unit
def test_commit_phase_and_partial_chunks():
    row = ModelRow("odd", 2_500, 3)
    assert training_seconds(row, 0.5, 1_000, commit_phase_s=2.0) == 3 * (2.0 + 3 * 0.5)


@pytest.mark.unit
def test_human_units():
    assert human(30) == "30.0 seconds"
    assert human(90) == "1.5 minutes"
    assert human(3 * 86_400) == "3.0 days"
    assert human(250 * YEAR) == "250 years"


@pytest.mark.unit
def test_custom_rows_and_their_errors():
    assert parse_row("ResNet-50:25600000:90") == ModelRow("ResNet-50", 25_600_000, 90)
    assert parse_row("BERT:1e8:1e5") == ModelRow("BERT", 100_000_000, 100_000)
    for bad in ("nope", "x:1", "x:-5:3", "x:a:b"):
        with pytest.raises(UserError, match=r"NAME:PARAMETERS:EPOCHS|positive"):
            parse_row(bad)


@pytest.mark.unit
def test_pace_from_search_and_sweep_folders(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "search.json").write_text(json.dumps({"min_pace_s": 0.4}))
    assert pace_from(tmp_path / "s")[0] == 0.4
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "sweep.json").write_text(json.dumps({"searches": [{"min_pace_s": 0.1}, {"min_pace_s": 0.7}, {"min_pace_s": None}]}))
    assert pace_from(tmp_path / "w")[0] == 0.7
    with pytest.raises(UserError, match=r"no search\.json"):
        pace_from(tmp_path)


@pytest.mark.subprocess
def test_cli_prints_the_table():
    result = subprocess.run([sys.executable, "-m", "loadgen", "estimate", "--pace", "0.5"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "13.9 hours" in result.stdout  # CNN: 100 × 1,000 × 0.5 s


@pytest.mark.subprocess
def test_piped_output_keeps_every_value_whole():
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "estimate", "--model", "A very long model name for a pipe:3e12:12345"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "60"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert "175,000,000,000" in result.stdout and "3,000,000,000,000" in result.stdout
    assert "A very long model name for a pipe" in result.stdout


@pytest.mark.subprocess
def test_json_gives_the_rows():
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", "estimate", "--json", "--pace", "0.5", "--only", "--model", "R:2500:3", "--commit-phase", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["pace_s"], data["chunk_size"], data["commit_phase_s"]) == (0.5, 1_000, 2.0)
    assert data["rows"] == [
        {"model": "R", "parameters": 2_500, "epochs": 3, "chunks_per_epoch": 3, "training_s": 3 * (2.0 + 3 * 0.5),
         "training": "10.5 seconds", "study_says": None}
    ]  # fmt: skip

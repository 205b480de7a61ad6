"""The study's training-time arithmetic (its 4.4), exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadgen.errors import UserError
from loadgen.estimate import STUDY_ROWS, YEAR, ModelRow, human, pace_from, parse_row, training_seconds

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

"""The base of every configuration model: unknown keys are errors (a misspelt key must never be
silently ignored) and a validated config cannot change under the run that uses it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

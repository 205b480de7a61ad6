"""The base of every configuration model: unknown keys are errors (a misspelt key must never be
silently ignored) and a validated config cannot change under the run that uses it. And what
reads the models' shape (the "did you mean" of a misspelt key, the configuration reference)
asks it here."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def members_of(annotation: Any) -> list[Any]:
    """The alternatives of a union (X | None counts as X), else the annotation itself."""
    if get_origin(annotation) is Annotated:
        return members_of(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) if a is not type(None) for m in members_of(a)]
    return [annotation]


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def tag_of(model: type[BaseModel]) -> tuple[str, str] | None:
    """A tagged union member's tag key and value (``kind: fl-round``, ``shape: ramp``)."""
    for name, field in model.model_fields.items():
        if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1 and field.is_required():
            return name, str(get_args(field.annotation)[0])
    return None

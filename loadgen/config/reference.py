"""The configuration reference, read from the models themselves, so that it cannot drift from what
``loadgen run`` accepts: every key of the experiment file (dotted, as ``--set`` takes it), its
type, its default and its description. ``make docs`` puts it in docs/configuration.md in place of
``MARKER`` (scripts/mkdocs_hooks.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from loadgen.config.strict import is_model, members_of, tag_of

MARKER = "<!-- configuration reference -->"
_SCALARS = {int: "integer", float: "number", str: "string", bool: "true or false"}


@dataclass(frozen=True)
class Row:
    key: str  # dotted, as --set takes it; [] marks a list's items
    type: str
    default: str
    description: str


def _type_text(annotation: Any) -> str:
    members = members_of(annotation)
    if len(members) > 1 and all(is_model(m) for m in members):
        tags = [t for t in (tag_of(m) for m in members) if t is not None]
        if tags:
            return f"a mapping with `{tags[0][0]}:` " + ", ".join(f"`{value}`" for _, value in tags)
    if len(members) > 1:
        return " or ".join(_type_text(m) for m in members)
    (only,) = members
    if get_origin(only) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(only))
    if get_origin(only) is list:
        (item,) = get_args(only) or (Any,)
        return "a list of " + _plural(_type_text(item))
    if is_model(only):
        return "a mapping"
    if only is Any:
        return "any value"
    return _SCALARS.get(only, getattr(only, "__name__", str(only)))


def _plural(text: str) -> str:
    """What a list holds: ``a mapping with …`` → ``mappings with …``, ``string`` → ``strings``."""
    if text == "any value":
        return "values"
    if text.startswith("one of "):
        return "values, each " + text
    head, _, rest = text.removeprefix("a ").partition(" ")
    return f"{head}s {rest}".strip()


def _bounds(field: FieldInfo) -> str:
    signs = {
        annotated_types.Gt: (">", "gt"),
        annotated_types.Ge: ("≥", "ge"),
        annotated_types.Lt: ("<", "lt"),
        annotated_types.Le: ("≤", "le"),
    }
    parts = []
    for m in field.metadata:
        for kind, (sign, attribute) in signs.items():
            if isinstance(m, kind):
                bound = getattr(m, attribute)
                parts.append(f"{sign} {bound:,}" if isinstance(bound, int) else f"{sign} {bound:g}")
        if isinstance(m, annotated_types.MinLen):
            parts.append(f"at least {m.min_length} item{'s' * (m.min_length > 1)}")
    return ", ".join(parts)


def _yaml(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _yaml(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return _yaml(field.default)


def rows(model: type[BaseModel], prefix: str = "", unions: dict[str, Union_] | None = None) -> list[Row]:
    """Every key under ``model``: a nested mapping's keys in its place, a list of mappings' as
    ``key[].…``. A tagged union (``profile``'s ``shape:``, an argument's ``gen:``) gets one row
    here and is collected in ``unions`` for a table of its own."""
    out = []
    for name, field in model.model_fields.items():
        key = prefix + name
        annotation = field.annotation
        listed = get_origin(annotation) is list
        items = members_of(get_args(annotation)[0]) if listed and get_args(annotation) else members_of(annotation)
        description = _cell(field.description or "")
        if len(items) == 1 and is_model(items[0]) and not listed:
            out += rows(items[0], key + ".", unions)
            continue
        kind = _type_text(annotation)
        bounds = _bounds(field)
        out.append(Row(key, f"{kind}, {bounds}" if bounds else kind, _default(field), description))
        models = [m for m in items if is_model(m)]
        tags = [t for t in (tag_of(m) for m in models) if t is not None]
        if len(models) > 1 and len(tags) == len(models):
            union = (unions if unions is not None else {}).setdefault(tags[0][0], Union_(tuple(models), []))
            union.paths.append(key + ("[]" if listed else ""))
        elif len(models) == 1:
            out += rows(models[0], key + "[].", unions)
    return out


@dataclass(frozen=True)
class Union_:
    """A tagged union of mappings and where the file has one."""

    models: tuple[type[BaseModel], ...]
    paths: list[str]

    def rows(self) -> list[tuple[str, Row]]:
        """Each member's keys but the tag, as (tag values, row); a key that several members
        share alike is one row naming them all."""
        merged: dict[Row, list[str]] = {}
        for model in self.models:
            tag = tag_of(model)
            assert tag is not None
            for row in rows(model):
                if row.key != tag[0]:
                    merged.setdefault(row, []).append(tag[1])
        return [(", ".join(f"`{v}`" for v in values), row) for row, values in merged.items()]


def _cell(text: str) -> str:
    """Text as a Markdown table cell shows it: no cell break, no HTML tag, one line."""
    return " ".join(text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").split())


def _table(rows_: list[Row]) -> list[str]:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r.key}` | {r.type} | {r.default} | {r.description} |" for r in rows_]
    return lines


def sections() -> tuple[dict[str, list[Row]], dict[str, Union_]]:
    """The reference's sections: the file's top level, chain, run and one per workload kind;
    and the tagged unions their keys hold, by tag."""
    from loadgen.config.schema import ChainConfig, Experiment, RunConfig, _current
    from loadgen.workloads import WORKLOADS, load_plugins

    load_plugins()
    model = _current()  # with any workload registered since loadgen.config.schema was imported
    unions: dict[str, Union_] = {}
    top = [Row(k, _type_text(f.annotation), _default(f), _cell(f.description or "")) for k, f in model.model_fields.items() if k == "name"]
    out = {"top level": top, "chain": rows(ChainConfig, "chain.", unions), "run": rows(RunConfig, "run.", unions)}
    assert set(Experiment.model_fields) == {"name", "chain", "workload", "run"}, "a new top-level section: add it here"
    for kind, cls in sorted(WORKLOADS.items()):
        out[f"workload: {kind}"] = rows(cls.config_model, "workload.", unions)
    return out, unions


def markdown() -> str:
    from loadgen.workloads import WORKLOADS

    lines: list[str] = []
    tables, unions = sections()
    for title, section in tables.items():
        lines += [f"### {title}", ""]
        if title.startswith("workload: "):
            doc = (WORKLOADS[title.removeprefix("workload: ")].config_model.__doc__ or "").strip()
            if doc:
                lines += [" ".join(doc.split()), ""]
        lines += [*_table(section), ""]
    for tag, union in unions.items():
        paths = ", ".join(f"`{p}`" for p in dict.fromkeys(union.paths))
        lines += [f"### {tag}: the mappings of {paths}", ""]
        lines += [f"| {tag} | key | type | default | description |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {values} | `{r.key}` | {r.type} | {r.default} | {r.description} |" for values, r in union.rows()]
        lines.append("")
    return "\n".join(lines)

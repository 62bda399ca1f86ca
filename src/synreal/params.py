"""Typed stage parameters: dataclasses whose field metadata carries the documentation.

Every stage declares its parameters as a dataclass; :func:`parse_params` turns the
spec's ``params`` dict into it, rejecting unknown keys with the list of known ones, so a
stage run by hand from the CLI gets the same checks as one run from the workflow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from synreal.errors import ConfigError

T = TypeVar("T")


def doc(description: str, **kwargs: Any) -> Any:
    """A dataclass field with a description (shown by ``python -m synreal <stage> --help``)."""
    return dataclasses.field(metadata={"description": description}, **kwargs)


def parse_params(cls: type[T], data: dict, where: str) -> T:
    """Build ``cls`` from ``data``; unknown keys raise a ConfigError naming ``where``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; known keys: {sorted(names)}.")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def describe(cls: type) -> str:
    """One line per parameter: name, default and description, for CLI help."""
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        lines.append(f"  {f.name} (default {default}): {f.metadata.get('description', '')}")
    return "\n".join(lines)


def _json_type(annotation: Any) -> dict:
    """JSON-schema type of a (resolved) annotation; unions become ``anyOf``."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_json_type(a) for a in typing.get_args(annotation)]
        return {"anyOf": options}
    if annotation is type(None):
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if origin in (tuple, list) or annotation in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = _json_type(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    return {}


def schema_for(cls: type) -> dict:
    """A JSON-schema object for ``cls``: every field typed, with its default and description.

    Used to generate the per-stage blocks of ``workflow/schemas/config.schema.yaml`` so the
    schema (the user reference) and the dataclasses (what the code reads) cannot drift apart.
    """
    import typing

    hints = typing.get_type_hints(cls)
    properties = {}
    for f in dataclasses.fields(cls):
        prop = _json_type(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        if default is not dataclasses.MISSING:
            prop["default"] = list(default) if isinstance(default, tuple) else default
        prop["description"] = f.metadata.get("description", "")
        properties[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": properties}

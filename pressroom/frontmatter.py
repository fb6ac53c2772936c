"""YAML as a comms officer writes it, read with a map of lines: releases' front matter and organisation files.

What is read keeps its scalars as written (pydantic types them), and every problem, from a byte
that is not UTF-8 to a field that fails its validator, becomes a
:class:`~pressroom.errors.ReleaseError` (or a subclass) naming the file, the line and the field,
with a hint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic_core import PydanticCustomError

from pressroom.errors import ReleaseError
from pressroom.text import clean_text

__all__ = ["Lines", "clean_strings", "decode", "field_error", "line", "line_map", "parse_yaml", "problem", "split"]

#: Field path (``("hero", "alt")``, ``("contacts", 0)``) -> its 1-based line in the file.
Lines = dict[tuple, int]


def decode(raw: bytes, path: Path, *, error: type[ReleaseError] = ReleaseError) -> str:
    """The file's text (a UTF-8 byte order mark is dropped); a byte that is not UTF-8 is an error at its line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        number = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"byte 0x{raw[exc.start]:02x} is not UTF-8",
            path=path,
            line=number,
            field="encoding",
            hint="save the file as UTF-8 (most editors: 'Save with encoding')",
        ) from None


def split(text: str, path: Path) -> tuple[str, str]:
    """A release file's (front matter, Markdown body): the YAML between the first two ``---`` lines."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ReleaseError(
            "the file does not start with front matter",
            path=path,
            line=1,
            field="front-matter",
            hint="start the file with a line '---', the fields (title:, date:, status: ...), then another '---'",
        )
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    raise ReleaseError(
        "the front matter is never closed",
        path=path,
        line=1,
        field="front-matter",
        hint="add a line '---' after the last field",
    )


class _StringLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: the same result, 2x faster
    """YAML that keeps scalars as written: ``no`` stays "no", ``09:00`` is not sexagesimal,
    a date is not silently turned into a naive datetime. Pydantic does the typing."""


_StringLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(
    source: str, path: Path, *, first_line: int, field: str = "front-matter", error: type[ReleaseError] = ReleaseError
) -> tuple[yaml.Node, dict]:
    """The YAML node of ``source`` (for :func:`line_map`) and its data, which must be a mapping.

    ``first_line`` is the file line ``source`` starts on (2 in a release, after its ``---``);
    a problem is an ``error`` about ``field``."""
    loader = _StringLoader(source)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, path, first_line=first_line, field=field, error=error) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise error(
            "the front matter is not a list of 'field: value' lines",
            path=path,
            line=first_line,
            field=field,
            hint="write one 'field: value' per line, e.g. 'title: Our news'",
        )
    return node, data


def _yaml_error(
    exc: yaml.YAMLError, source: str, path: Path, *, first_line: int, field: str, error: type[ReleaseError]
) -> ReleaseError:
    # The context mark points at where an unclosed quote or bracket began, which is what needs fixing.
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    tab = _tab_indented_line(source, before=mark.line if mark else len(source))
    if tab is not None:
        return error(
            "a tab in the indentation",
            path=path,
            line=first_line + tab,
            field=field,
            hint="YAML indents with spaces only: replace the tab at the start of the line with spaces",
        )
    described = " ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])) or str(exc)
    return error(
        f"invalid YAML: {described}",
        path=path,
        line=first_line + mark.line if mark else 1,
        field=field,
        hint="check indentation, close every quote, and quote values that contain ': ' or start with [ { * & ! | > % @",
    )


def _tab_indented_line(source: str, *, before: int) -> int | None:
    """0-based number of the first line up to ``before`` whose indentation holds a tab."""
    if "\t" not in source:
        return None
    for number, text in enumerate(source.splitlines()[: before + 1]):
        if "\t" in text[: len(text) - len(text.lstrip(" \t"))]:
            return number
    return None


def line_map(node: yaml.Node, *, first_line: int, prefix: tuple = (), lines: Lines | None = None) -> Lines:
    """Field path -> file line of each key and list item, so errors can name a line."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, key_node.value)
            lines[path] = first_line + key_node.start_mark.line
            line_map(value_node, first_line=first_line, prefix=path, lines=lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = first_line + item.start_mark.line
            line_map(item, first_line=first_line, prefix=path, lines=lines)
    return lines


def line(lines: Lines, loc: tuple) -> int:
    """The file line of a field; 1 when it is not written."""
    return lines.get(loc) or 1


def clean_strings(value: Any) -> Any:
    """YAML escapes such as "\\x0b" can produce characters that the raw-text pass could not see."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {key: clean_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_strings(item) for item in value]
    return value


def problem(message: str, hint: str, *, field: str = "", at: str = "") -> PydanticCustomError:
    """A validation error that carries its own hint; ``field`` and ``at`` (the line to point at,
    dotted) override the location pydantic would give."""
    return PydanticCustomError("release", "{message}", {"message": message, "hint": hint, "field": field, "at": at})


def field_error(
    error: Any,
    path: Path,
    lines: Lines,
    *,
    sections: dict[str, type],
    fields: Iterable[str],
    hints: dict[str, str],
    kind: type[ReleaseError] = ReleaseError,
) -> ReleaseError:
    """The first pydantic error of a schema as a ``kind`` of error: the field, its line, a message and what to do.

    ``sections`` are the models of the schema's nested fields, ``fields`` its top-level names,
    ``hints`` what to write for each top-level field (a :func:`problem` carries its own)."""
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    name = ctx.get("field") or ".".join(str(part) for part in loc)
    at = tuple(int(part) if part.isdigit() else part for part in ctx["at"].split(".")) if ctx.get("at") else loc
    if error["type"] == "missing":  # at the section it is missing from (line 1 for a top-level field)
        at = loc[:-1]
    message, hint = _explained(error, loc, hints.get(str(loc[0]), "see the front-matter fields in the README"),
                               sections=sections, fields=fields)
    return kind(message, path=path, line=line(lines, at), field=name, hint=hint)


def _explained(
    error: Any, loc: tuple, hint: str, *, sections: dict[str, type], fields: Iterable[str]
) -> tuple[str, str]:
    """(message, hint) of one pydantic error, in the words of the person who wrote the file."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "release":
        return error["msg"].removeprefix("Value error, "), ctx["hint"]
    if kind == "missing":
        return "is required", hint
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "is empty", hint
    if kind == "literal_error":
        return f"{error['input']!r} is not one of: {ctx['expected'].replace(' or ', ', ')}", hint
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return "unknown field", "remove it or check its spelling; known fields: " + ", ".join(fields)
        section = ".".join(str(part) for part in loc[:-1])
        known = ", ".join(sections[str(loc[0])].model_fields)
        return "unknown field", f"remove it or check its spelling; the fields of {section} are: {known}"
    return error["msg"].removeprefix("Value error, "), hint

"""Writing scenario files: just enough TOML for a ``[cluster]`` table and ``[[step]]``
tables whose values are strings, numbers, booleans, lists and inline tables.

Floats are written with ``repr`` so that reading the file gives back exactly the same
numbers (a step's ``at`` must land on the same virtual instant when replayed).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["scenario_toml", "toml_value"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} in a scenario file")
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string is JSON's
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} in a scenario file")


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


def scenario_toml(*, title: str, description: str, seed: int, bugs: Sequence[str],
                  cluster: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
                  header: str = "", step_comments: Mapping[int, str] | None = None) -> str:
    """A scenario file. ``header`` becomes a comment at the top; ``step_comments`` maps
    a step's position (0-based) to a comment written above it."""
    lines: list[str] = []
    if header:
        lines += [_comment(header), ""]
    lines.append(f"title = {toml_value(title)}")
    if description:
        lines.append(f"description = {toml_value(description)}")
    lines.append(f"seed = {toml_value(seed)}")
    if bugs:
        lines.append(f"bugs = {toml_value(list(bugs))}")
    lines += ["", "[cluster]"]
    for key, value in cluster.items():
        lines.append(f"{_key(key)} = {toml_value(value)}")
    comments = step_comments or {}
    for position, step in enumerate(steps):
        lines.append("")
        if position in comments:
            lines.append(_comment(comments[position]))
        lines.append("[[step]]")
        for key, value in step.items():
            lines.append(f"{_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"

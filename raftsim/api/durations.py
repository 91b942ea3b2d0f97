"""Durations as Go writes and reads them (``time.Duration.String``, ``time.ParseDuration``):
Nomad's JSON carries ``LastContact``, ``LastContactThreshold`` and
``ServerStabilizationTime`` this way."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` writes it."""
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + go_duration(-seconds)
    nanos = round(seconds * 1e9)
    if nanos < 1_000:
        return f"{nanos}ns"
    if nanos < 1_000_000:
        return f"{_trim(nanos / 1e3)}µs"
    if nanos < 1_000_000_000:
        return f"{_trim(nanos / 1e6)}ms"
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{_trim(rest / 1e9)}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def parse_go_duration(text: str) -> float:
    """Seconds from Go's duration syntax (``"200ms"``, ``"1m30s"``, ``"0"``); raises
    ValueError with Go's wording for anything else."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total

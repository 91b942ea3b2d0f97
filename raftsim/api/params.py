"""Query-string parsing with Go's rules, so a value Nomad accepts is accepted here."""

from __future__ import annotations

from aiohttp import web

from raftsim.api.errors import ApiError

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``: exactly these spellings, anything else is an error."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Nomad's ``parseConsistency`` reads ``stale``: absent
    is ``default``, present without a value is true, the first value counts."""
    if name not in request.query:
        return default
    value = request.query.getone(name)
    if value == "":
        return True
    try:
        return parse_bool(value)
    except ValueError:
        raise ApiError(
            400, f"Expect `true` or `false` for `{name}` query string parameter, got {value}"
        ) from None


def stale(request: web.Request) -> bool:
    return query_bool(request, "stale")


def query_value(request: web.Request, name: str) -> str | None:
    """The first value of ``name``, or None when it is absent (Go's ``params[name]``)."""
    if name not in request.query:
        return None
    return request.query.getone(name)

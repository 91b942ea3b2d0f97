"""``/v1/kv/<key>``: raftsim's own key-value endpoints over the replicated state machine.

Keys are UTF-8 paths (percent-encoded in the URL as usual), at most 512 bytes; values are
the raw request body, at most 512 KiB (413 past it). A write answers once its entry is
committed and applied. A read is linearizable by default: the leader confirms it still
leads with a ReadIndex round (``Server.read_barrier``) before reading; ``?stale`` reads
the answering server's own copy.

A leader holding too many uncommitted bytes (a slow quorum; ``max_uncommitted_bytes``,
64 MiB by default), or too many writes not yet answered (group commit's bounded queues:
``Overloaded``, more writes offered than it commits), refuses writes with 429 Too Many
Requests, a text/plain message saying why and a ``Retry-After`` header, instead of
queueing them in memory: the write did not happen and can be sent again.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from aiohttp import web

from raftsim.api.errors import INVALID_METHOD, ApiError, text_response
from raftsim.api.forwarding import answer_by_leader, answer_locally
from raftsim.api.meta import read_headers
from raftsim.api.params import query_value, stale
from raftsim.api.state import STATE
from raftsim.core.errors import UncommittedLimitReached
from raftsim.runtime.errors import Overloaded
from raftsim.runtime.kv import MAX_KEY_BYTES, MAX_VALUE_BYTES, encode_delete, encode_put

PREFIX = "/v1/kv/"
PATH = PREFIX + "{key:.*}"
_UINT64_MAX = 2**64 - 1

routes = web.RouteTableDef()


def key_of(request: web.Request) -> str:
    """The key, decoded from the raw path so any UTF-8 (and only UTF-8) is taken as is."""
    return key_in_path(request.raw_path.split("?", 1)[0])


def key_in_path(raw: str) -> str:
    """The key a raw (still percent-encoded) path without query names; ApiError 400."""
    encoded = raw[len(PREFIX):] if raw.startswith(PREFIX) else ""
    data = unquote_to_bytes(encoded)
    if not data:
        raise ApiError(400, "Missing key name")
    if len(data) > MAX_KEY_BYTES:
        raise ApiError(400, f"Key too long: {len(data)} bytes, the limit is {MAX_KEY_BYTES}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Key is not valid UTF-8") from None


def cas_of(request: web.Request) -> int | None:
    """``?cas=<index>`` parsed as Go's ``strconv.ParseUint(value, 10, 64)``."""
    value = query_value(request, "cas")
    if value is None:
        return None
    if not value.isascii() or not value.isdigit():
        raise ApiError(400, f'Error parsing cas value: strconv.ParseUint: parsing "{value}": '
                            "invalid syntax")
    cas = int(value)
    if cas > _UINT64_MAX:
        raise ApiError(400, f'Error parsing cas value: strconv.ParseUint: parsing "{value}": '
                            "value out of range")
    return cas


_TRUE, _FALSE = b"true", b"false"

#: seconds a client refused with 429 is told to wait before it retries
RETRY_AFTER_SECONDS = 1


def overloaded_response(exc: Exception) -> web.Response:
    """429 for a write refused for lack of room (see the module docstring)."""
    response = text_response(429, f"{exc}")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def _write(request: web.Request, command: bytes) -> web.StreamResponse:
    """Propose ``command`` at the leader; 429 if it holds too much uncommitted, or too
    many writes in flight."""
    state = request.app[STATE]
    try:
        done = await state.server.propose(command, timeout=state.request_timeout)
    except (UncommittedLimitReached, Overloaded) as exc:
        return overloaded_response(exc)
    # the two possible answers, encoded once (json_response would encode each anew)
    return web.Response(body=_TRUE if done else _FALSE, content_type="application/json",
                        charset="utf-8")


def _too_large() -> ApiError:
    return ApiError(413, f"Value exceeds {MAX_VALUE_BYTES} byte limit")


async def value_of(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_VALUE_BYTES:
        raise _too_large()
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None
    if len(body) > MAX_VALUE_BYTES:
        raise _too_large()
    return body


@routes.get(PATH, allow_head=False)
async def get_key(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    key = key_of(request)
    local = stale(request)

    async def act() -> web.StreamResponse:
        server = state.server
        if local:
            index = server.kv.applied_index
        else:
            index = await server.read_barrier(timeout=state.request_timeout)
        item = server.kv.get(key)
        if item is None:
            return web.Response(status=404, headers=read_headers(state, index))
        return web.Response(body=item.value, content_type="application/octet-stream",
                            headers=read_headers(state, item.modify_index))

    if local:
        return await answer_locally(request, act)
    return await answer_by_leader(request, act, read=True)


@routes.put(PATH)
async def put_key(request: web.Request) -> web.StreamResponse:
    key = key_of(request)
    cas = cas_of(request)
    value = await value_of(request)

    async def act() -> web.StreamResponse:
        return await _write(request, encode_put(key, value, cas))

    return await answer_by_leader(request, act, body=value)


@routes.delete(PATH)
async def delete_key(request: web.Request) -> web.StreamResponse:
    key = key_of(request)

    async def act() -> web.StreamResponse:
        return await _write(request, encode_delete(key))

    return await answer_by_leader(request, act)


@routes.route("*", PATH)
async def kv_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(405, INVALID_METHOD)

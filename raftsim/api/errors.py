"""How a failed request is answered: a status and Nomad's message as a text/plain body.

Handlers raise :class:`ApiError` for what they check themselves; :func:`error_for` maps
the runtime's and the core's refusals to the status Nomad gives them (an uncoded RPC error
is a 500 in Nomad, with the error's text as the body).
"""

from __future__ import annotations

from aiohttp import web

from raftsim.core.configuration import ConfigurationError
from raftsim.core.errors import NotLeader, ProposalDropped
from raftsim.runtime.errors import RequestFailed

#: Nomad's ErrInvalidMethod
INVALID_METHOD = "Invalid method"
PERMISSION_DENIED = "Permission denied"
#: what Go's net/http mux answers for a path nothing is registered on
PAGE_NOT_FOUND = "404 page not found"


class ApiError(Exception):
    """Answer the request with ``status`` and ``message`` (text/plain)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def text_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain",
                        charset="utf-8")


def error_for(exc: Exception) -> ApiError | None:
    """The answer for an exception the runtime or core raised, None if it is a bug."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestFailed | ConfigurationError | ProposalDropped):
        return ApiError(500, str(exc) or type(exc).__name__)
    if isinstance(exc, NotLeader):
        # hashicorp/raft's ErrNotLeader; forwarding retries before it gets here
        return ApiError(500, "node is not the leader")
    return None

"""ACLs as Nomad applies them to the endpoints raftsim serves: off unless a management
token is configured; then every endpoint but ``/v1/status/*`` needs that token.

The token is read as Nomad's ``parseToken`` reads it: ``X-Nomad-Token`` (whitespace
trimmed), else ``Authorization: Bearer <token>``. It is compared in constant time, and
nothing here logs, records or echoes it: :class:`Acl` hides it from ``repr``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web

from raftsim.api.errors import PERMISSION_DENIED, ApiError


class Acl:
    def __init__(self, management_token: str | None = None) -> None:
        if management_token is not None and not management_token.strip():
            raise ValueError("the management token must not be empty")
        self._token = management_token.strip().encode() if management_token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def allows(self, token: str | None) -> bool:
        """Whether ``token`` may use a management endpoint."""
        if self._token is None:
            return True
        if not token:
            return False
        # aiohttp hands header bytes that are not UTF-8 over as lone surrogates; they
        # go back to those bytes here, which match no token (and never raise).
        return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self._token)

    def __repr__(self) -> str:
        return f"Acl(enabled={self.enabled})"


def request_token(headers: Mapping[str, str]) -> str | None:
    """The ACL token a request carries, as Nomad's ``parseToken`` finds it."""
    token = headers.get("X-Nomad-Token", "")
    if token:
        return token.strip()
    authorization = headers.get("Authorization", "")
    parts = authorization.split(" ")
    if len(parts) > 1 and parts[0].lower() == "bearer":
        value = " ".join(parts[1:]).strip()
        return value.split(" ")[0].strip() or None
    return None


def authorize(request: web.Request, acl: Acl) -> None:
    """Raise 403 ``Permission denied`` unless the request may use a management endpoint."""
    if not acl.allows(request_token(request.headers)):
        raise ApiError(403, PERMISSION_DENIED)

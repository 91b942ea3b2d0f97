"""Why a client request to a server failed. Messages are Nomad's where Nomad has one."""

from __future__ import annotations


class RequestFailed(Exception):
    """Base class: the request did not (or may not) take effect."""


class LeadershipLost(RequestFailed):
    """The leader lost leadership before the entry committed: it may or may not commit."""

    def __init__(self) -> None:
        super().__init__("leadership lost while committing log")


class NoClusterLeader(RequestFailed):
    def __init__(self) -> None:
        super().__init__("No cluster leader")


class ServerStopped(RequestFailed):
    def __init__(self) -> None:
        super().__init__("server stopped")


class RequestTimeout(RequestFailed):
    """Gave up waiting; the outcome is unknown."""


class CallInterrupted(RequestFailed):
    """A call to another server ended without an answer: its connection closed (the
    request may or may not have been carried out) or there was none (``sent`` False:
    it was not)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class Overloaded(RequestFailed):
    """The leader holds as many writes as it takes (group commit's bounded queues): this
    one was refused at once and not made; retrying after a moment can succeed."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"too many writes in flight: {detail}; retry later")

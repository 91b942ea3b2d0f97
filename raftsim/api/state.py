"""What every handler of one server's application needs, kept under one typed key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from raftsim.api.acl import Acl
from raftsim.api.directory import MemberDirectory
from raftsim.core.node import RaftNode
from raftsim.runtime.errors import ServerStopped
from raftsim.runtime.server import Server


@dataclass(eq=False)
class ApiState:
    server: Server
    directory: MemberDirectory
    acl: Acl
    #: how long a request waits for a leader to be known before ``No cluster leader``
    leader_hold: float = 5.0
    #: how long a write waits to commit (and a linearizable read to be confirmed)
    request_timeout: float = 5.0
    #: how long a request's body may take to arrive after its headers (None: no limit;
    #: ``serve_http`` sets it for a real port, where a client can send half a body)
    body_timeout: float | None = None
    #: when the application was built (the base of LastContact before any contact)
    created_at: float = 0.0
    #: seconds to add to the server's loop time to get Unix time, for the times the
    #: API shows as dates (0 in the simulated world: its clock starts at the epoch)
    wall_offset: float = 0.0
    #: the application's own request handling, set up on first use by ``exchange``
    local_runner: asyncio.Task[web.AppRunner] | None = field(default=None, repr=False)

    def node(self) -> RaftNode:
        node = self.server.node
        if node is None:
            raise ServerStopped()
        return node


STATE = web.AppKey("raftsim_api_state", ApiState)

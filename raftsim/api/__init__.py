"""The HTTP API every raftsim server serves: Nomad's operator, status and agent endpoints,
and raftsim's own (membership changes, a KV store). The handlers read the runtime's state
and call its methods; no Raft rule lives here.

``build_app`` makes one server's application; ``serve_http`` puts it on a TCP port;
``SimApi`` serves it in the simulated world without a port.
"""

from raftsim.api.app import build_app
from raftsim.api.directory import MemberDirectory
from raftsim.api.inmemory import ApiResponse, SimApi
from raftsim.api.serve import serve_http

__all__ = ["ApiResponse", "MemberDirectory", "SimApi", "build_app", "serve_http"]

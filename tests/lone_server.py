"""A cluster of one for tests of what a single server does (HTTP limits, the KV write
shortcut, group commit, decoding commands): it bootstraps alone, leads once its
election timeout passes, and sends to nowhere."""

from __future__ import annotations

import asyncio
import random

from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.node import bootstrap_state
from raftsim.core.settings import NodeSettings
from raftsim.runtime.server import Server
from raftsim.storage.base import Storage
from raftsim.storage.memory import MemoryStorage


class Nowhere:
    """A transport with no peers: a cluster of one sends nothing anyone receives."""

    def send(self, target: str, data: bytes, meta: object = None) -> None:
        pass


def lone_server(loop: asyncio.AbstractEventLoop, *, name: str = "s1",
                address: str = "127.0.0.1:1", storage: Storage | None = None) -> Server:
    """A started server, with group commit, that is the whole cluster: it bootstraps
    with itself as the only voter and becomes leader on its own."""
    storage = storage if storage is not None else MemoryStorage()
    hard_state, entries = bootstrap_state(Configuration((ServerInfo(name, address),)))
    storage.save(hard_state, tuple(entries), None)
    server = Server(name, settings=NodeSettings(), rng=random.Random(1), storage=storage,
                    transport=Nowhere(), loop=loop, group_commit=True)
    server.start()
    return server

"""A synchronous, in-memory network of core nodes for the core's own tests.

Like etcd's ``network`` in raft_test.go: messages are delivered by hand or in bulk, time
is a number the test moves, and nothing else (no runtime, no asyncio) is involved, so a
test reads as the paper's sentence it checks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.messages import Entry, HardState, Message, Snapshot
from raftsim.core.node import RaftNode, bootstrap_state
from raftsim.core.ready import Ready, Role
from raftsim.core.settings import NodeSettings


class Disk:
    """What a node persisted (applied from each Ready), to restart it from."""

    def __init__(self, hard_state: HardState, entries: list[Entry]) -> None:
        self.hard_state = hard_state
        self.entries = list(entries)
        self.snapshot: Snapshot | None = None

    def save(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            snap = ready.snapshot
            self.entries = [e for e in self.entries if e.index > snap.index]
            self.snapshot = snap
        if ready.entries:
            first = ready.entries[0].index
            self.entries = [e for e in self.entries if e.index < first] + list(ready.entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state


class CoreNet:
    def __init__(
        self,
        ids: Iterable[str] = ("a", "b", "c"),
        *,
        seed: int = 1,
        settings: NodeSettings | None = None,
        nonvoters: Iterable[str] = (),
    ) -> None:
        self.ids = list(ids)
        nonvoting = set(nonvoters)
        config = Configuration(
            tuple(ServerInfo(i, f"10.0.0.{n + 1}:4647", i not in nonvoting)
                  for n, i in enumerate(self.ids))
        )
        self.settings = settings or NodeSettings()
        self.seed = seed
        self.now = 0.0
        self.disks: dict[str, Disk] = {}
        self.nodes: dict[str, RaftNode] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.queue: list[Message] = []
        self.dropped: Callable[[Message], bool] = lambda m: False
        self.down: set[str] = set()
        hard_state, entries = bootstrap_state(config)
        for i in self.ids:
            self.disks[i] = Disk(hard_state, entries)
            self.start(i)

    def start(self, node_id: str) -> RaftNode:
        disk = self.disks[node_id]
        node = RaftNode(node_id, self.settings, random.Random(f"{self.seed}:{node_id}"),
                        hard_state=disk.hard_state, snapshot=disk.snapshot,
                        entries=list(disk.entries), now=self.now)
        self.nodes[node_id] = node
        self.applied[node_id] = []
        self.down.discard(node_id)
        return node

    def crash(self, node_id: str) -> None:
        self.down.add(node_id)
        self.queue = [m for m in self.queue if m.target != node_id]

    def handle(self, node_id: str, ready: Ready) -> Ready:
        self.disks[node_id].save(ready)
        self.applied[node_id].extend(ready.committed)
        for m in ready.messages:
            if m.target in self.down or self.dropped(m):
                continue
            self.queue.append(m)
        return ready

    def deliver_all(self, limit: int = 100_000) -> int:
        count = 0
        while self.queue and count < limit:
            m = self.queue.pop(0)
            count += 1
            if m.target in self.down or m.target not in self.nodes:
                continue
            self.handle(m.target, self.nodes[m.target].step(m, self.now))
        return count

    def tick(self, seconds: float) -> None:
        """Advance time in small steps, firing every due timer and delivering messages."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + 0.01)
            for i in self.ids:
                if i in self.down:
                    continue
                node = self.nodes[i]
                if node.deadline() <= self.now:
                    self.handle(i, node.on_timeout(self.now))
            self.deliver_all()

    def campaign(self, node_id: str) -> None:
        node = self.nodes[node_id]
        node._election_deadline = self.now  # force this node's timer to fire now
        self.handle(node_id, node.on_timeout(self.now))
        self.deliver_all()

    def leaders(self) -> list[str]:
        return [i for i in self.ids
                if i not in self.down and self.nodes[i].role is Role.LEADER]

    def propose(self, node_id: str, data: bytes) -> tuple[int, int]:
        ready = self.handle(node_id, self.nodes[node_id].propose(data, self.now))
        assert ready.proposed is not None
        return ready.proposed

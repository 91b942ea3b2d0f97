"""A synchronous, in-memory network of core nodes for the core's own tests.

Like etcd's ``network`` in raft_test.go: messages are delivered by hand or in bulk, time
is a number the test moves, and nothing else (no runtime, no asyncio) is involved, so a
test reads as the paper's sentence it checks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from raftsim.core.configuration import Configuration, ServerInfo
from raftsim.core.messages import Entry, EntryKind, HardState, Message, Snapshot
from raftsim.core.node import RaftNode, bootstrap_state
from raftsim.core.ready import Event, ReadState, Ready, Role
from raftsim.core.settings import NodeSettings


class Disk:
    """What a node persisted (applied from each Ready), to restart it from."""

    def __init__(self, hard_state: HardState, entries: list[Entry]) -> None:
        self.hard_state = hard_state
        self.entries = list(entries)
        self.snapshot: Snapshot | None = None

    def save(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            # Compaction keeps the suffix after the snapshot; an installed snapshot that
            # does not match our log replaces it (as MemoryStorage does).
            snap = ready.snapshot
            matches = any(e.index == snap.index and e.term == snap.term for e in self.entries)
            self.entries = [e for e in self.entries if e.index > snap.index] if matches else []
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
        #: applied to every message as it is sent (after ``dropped``), to alter it
        self.rewrite: Callable[[Message], Message] = lambda m: m
        self.down: set[str] = set()
        #: (time, node, term, event) for every event every node reported
        self.trace: list[tuple[float, str, int, Event]] = []
        self.read_states: dict[str, list[ReadState]] = {i: [] for i in self.ids}
        #: every message sent (before drops), for tests that count round trips
        self.sent: list[Message] = []
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
        self.read_states.setdefault(node_id, []).extend(ready.read_states)
        term = self.nodes[node_id].term
        self.trace.extend((self.now, node_id, term, e) for e in ready.events)
        for m in ready.messages:
            self.sent.append(m)
            if m.target in self.down or self.dropped(m):
                continue
            self.queue.append(self.rewrite(m))
        return ready

    # ------------------------------------------------------------------ test helpers

    def set_log(self, node_id: str, terms: list[int], *, term: int,
                voted_for: str | None = None, commit: int = 1) -> None:
        """Restart ``node_id`` from a disk holding one entry per element of ``terms``
        (entry 1 stays the bootstrap configuration, so ``terms[0]`` must be 1)."""
        assert terms[0] == 1, "entry 1 is the bootstrap configuration, of term 1"
        config = self.disks[self.ids[0]].entries[0]
        entries = [config] + [Entry(t, i, EntryKind.COMMAND, f"{t}.{i}".encode())
                              for i, t in enumerate(terms[1:], start=2)]
        self.disks[node_id] = Disk(HardState(term, voted_for, commit), entries)
        self.start(node_id)

    def add_node(self, node_id: str) -> RaftNode:
        """A fresh server with an empty log, not (yet) in any configuration."""
        self.ids.append(node_id)
        self.disks[node_id] = Disk(HardState(), [])
        self.read_states[node_id] = []
        return self.start(node_id)

    def partition(self, *groups: Iterable[str]) -> None:
        """Drop every message between servers of different groups (servers not named
        form one more group)."""
        side: dict[str, int] = {}
        for n, group in enumerate(groups):
            for i in group:
                side[i] = n + 1
        self.dropped = lambda m: side.get(m.source, 0) != side.get(m.target, 0)

    def heal(self) -> None:
        self.dropped = lambda m: False

    def deliver_where(self, wanted: Callable[[Message], bool]) -> int:
        """Deliver (once) only the queued messages ``wanted`` picks; keep the rest."""
        picked = [m for m in self.queue if wanted(m)]
        self.queue = [m for m in self.queue if not wanted(m)]
        for m in picked:
            if m.target not in self.down:
                self.handle(m.target, self.nodes[m.target].step(m, self.now))
        return len(picked)

    def leader_terms(self) -> dict[int, set[str]]:
        """Every term in which some server became leader, and who did."""
        result: dict[int, set[str]] = {}
        for _, node_id, term, event in self.trace:
            if event.kind == "role" and event.fields.get("role") == "leader":
                result.setdefault(term, set()).add(node_id)
        return result

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
        self.handle(node_id, self.nodes[node_id].campaign(self.now))
        self.deliver_all()

    def leaders(self) -> list[str]:
        return [i for i in self.ids
                if i not in self.down and self.nodes[i].role is Role.LEADER]

    def propose(self, node_id: str, data: bytes) -> tuple[int, int]:
        ready = self.handle(node_id, self.nodes[node_id].propose(data, self.now))
        assert ready.proposed is not None
        return ready.proposed

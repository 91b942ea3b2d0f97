"""The simulated network: bytes between named endpoints, late, lost, doubled or cut off.

Raft's safety argument assumes a network that may delay, drop, duplicate and reorder
messages and split into partitions; this module is that network, under the control of a
seed. It carries opaque bytes (the servers really encode and decode msgpack) and knows
nothing of Raft; ``meta`` rides along untouched for the observer (the trace recorder).

Rules, in the order they are applied:

* at send: a detached (crashed) source drops the message ("crashed"); a blocked path
  drops it ("partition"); then the link's loss probability ("loss"). A surviving message
  arrives after a delay drawn uniformly from the link's latency range, but never before
  the message sent ahead of it on the same link: a link (one source to one target) keeps
  send order, as the TCP connection between two live servers does, so jitter delays
  messages and never reorders them. With probability ``reorder`` a message is instead
  held back up to ten times the link's maximum latency more, outside the link's order, so
  later messages overtake it (what a reconnection or a datagram network does); with
  probability ``duplication`` a second copy (same serial) travels with its own delay.
* at arrival: the message is dropped ("crashed") unless the target incarnation it was
  sent to is still attached -- a server that crashed and restarted in between does not
  get its predecessor's mail, as with a TCP connection that died with the process -- and
  dropped ("partition") if the path is blocked now, like a cable pulled mid-flight.

Blocked paths: ``partition(groups)`` puts each listed node in its group; any node not
listed (including one attached later) is alone. ``cut(a, b)`` blocks a->b only;
``isolate(n)`` blocks everything to and from n. A new ``partition`` replaces the
previous one; cuts and isolations accumulate; ``heal()`` removes all three and keeps
latency, loss and link settings. A node can always reach itself.

Random draws, all from the one ``rng``, per send: loss (only if the link's loss > 0),
latency, reorder (only if reorder > 0) and its extra delay, duplication (only if > 0),
then the copy's latency, reorder and extra delay. Nothing iterates a set or a dict in an
order that could change a draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from contextvars import Context
from typing import Any

from raftsim.sim.observer import NetworkObserver
from raftsim.sim.outside import Outside

__all__ = ["NetworkObserver", "SimNetwork", "DROP_REASONS"]

Deliver = Callable[[str, bytes], None]
#: why a message was dropped, as reported to ``on_drop``
DROP_REASONS = ("loss", "partition", "crashed", "chosen")

# reordered messages are held back by up to this many times the link's maximum latency
REORDER_FACTOR = 10.0


def _hook(observer: object | None, name: str) -> Callable[..., None] | None:
    """The observer's bound hook, or None if it is missing or the no-op default."""
    if observer is None:
        return None
    hook = getattr(observer, name, None)
    if hook is None or getattr(type(observer), name, None) is getattr(NetworkObserver, name):
        return None
    return hook


def _probability(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def _seconds(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _latency(name: str, value: object) -> tuple[float, float]:
    if isinstance(value, tuple | list) and len(value) == 2:
        low, high = value
        if _seconds(low) and _seconds(high) and 0.0 <= low <= high:
            return (float(low), float(high))
    raise ValueError(
        f"{name} must be a (low, high) pair of seconds with 0 <= low <= high, got {value!r}"
    )


class SimNetwork:
    """A seeded, faulty network between named endpoints, driven by a loop's timers.

    ``loop`` needs only ``time()`` and ``call_at()``; arrivals run outside every process
    (a message on the wire belongs to none, so one that a paused server sent still
    arrives), through a :class:`VirtualTimeLoop`'s ``call_at_outside`` where there is one.
    Counters: ``sent`` (calls to :meth:`send`), ``delivered`` (including
    duplicates), ``dropped`` (and ``dropped_by_reason``), ``duplicated``, ``in_flight``.

    The settings (latency, loss, duplication, reorder) are typed ``object`` because they
    are checked here, whatever they are: a scenario's or a teacher's value. (Typed
    ``float``, the compiled build would turn ``True`` into 1.0 before the check saw it.)
    """

    def __init__(
        self,
        loop: Any,
        rng: random.Random,
        *,
        latency: object = (0.001, 0.005),
        loss: object = 0.0,
        duplication: object = 0.0,
        reorder: object = 0.0,
        observer: object | None = None,
    ) -> None:
        low, high = _latency("latency", latency)
        self._loss = _probability("loss", loss)
        self._duplication = _probability("duplication", duplication)
        self._reorder = _probability("reorder", reorder)
        self._low, self._high = low, high
        self._time: Callable[[], float] = loop.time
        call_at_outside = getattr(loop, "call_at_outside", None)
        if call_at_outside is None:  # a stock asyncio loop: arrivals in an empty context
            wire = Context()

            def call_at_outside(when: float, callback: Callable[..., object],
                                *args: Any) -> None:
                loop.call_at(when, callback, *args, context=wire)

        self._call_at: Callable[..., None] = call_at_outside
        # a VirtualTimeLoop takes an arrival timer made here (no varargs, no frame of its
        # own to make it in): the same timer call_at_outside would make
        self._loop = loop
        self._schedule_outside: Callable[[float, Outside], None] | None = getattr(
            loop, "schedule_outside", None)
        self._random = rng.random
        #: every node ever attached, in attach order (ids that faults may name)
        self._known: dict[str, None] = {}
        self._endpoints: dict[str, Deliver] = {}
        # per-link overrides as given, and resolved (low, high, loss) by source, target
        self._overrides: dict[tuple[str, str], tuple[tuple[float, float] | None,
                                                     float | None]] = {}
        self._links: dict[str, dict[str, tuple[float, float, float]]] = {}
        # blocked paths
        self._groups: dict[str, int] | None = None
        self._cuts: dict[str, set[str]] = {}
        self._isolated: set[str] = set()
        self._faulty = False
        #: (source, target) -> when the last in-order message on that link arrives
        self._link_tail: dict[tuple[str, str], float] = {}
        self._serial = 0
        self.sent = 0
        self.delivered = 0
        self.dropped = 0
        self.duplicated = 0
        self.dropped_by_reason = dict.fromkeys(DROP_REASONS, 0)
        self._in_flight = 0
        #: serial -> [source, target, meta, copies on their way]
        self._flying: dict[int, list[Any]] = {}
        self._observer: object | None = None
        self.observer = observer

    # ------------------------------------------------------------------ observer

    @property
    def observer(self) -> object | None:
        return self._observer

    @observer.setter
    def observer(self, observer: object | None) -> None:
        self._observer = observer
        self._on_send = _hook(observer, "on_send")
        self._on_deliver = _hook(observer, "on_deliver")
        self._on_drop = _hook(observer, "on_drop")

    # ------------------------------------------------------------------ endpoints

    def attach(self, node_id: str, deliver: Deliver) -> None:
        """Start delivering messages for ``node_id`` to ``deliver(source, data)``.

        Each attach is a new incarnation: mail sent to an earlier one is not delivered.
        """
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        if not callable(deliver):
            raise ValueError(f"deliver must be callable, got {deliver!r}")
        if node_id in self._endpoints:
            raise ValueError(f"node {node_id!r} is already attached; detach it first")
        self._known[node_id] = None
        self._endpoints[node_id] = deliver

    def detach(self, node_id: str) -> None:
        """The node crashed: its in-flight mail is dropped on arrival, its sends refused.

        Detaching a node that is already detached does nothing.
        """
        self._check_known("detach", (node_id,))
        self._endpoints.pop(node_id, None)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node ever attached, in attach order."""
        return tuple(self._known)

    def is_attached(self, node_id: str) -> bool:
        return node_id in self._endpoints

    @property
    def in_flight(self) -> int:
        """Messages (and copies) scheduled to arrive but not arrived yet."""
        return self._in_flight

    # ------------------------------------------------------------------ sending

    def send(self, source: str, target: str, data: bytes, meta: object = None) -> None:
        """Hand ``data`` to the network; it arrives later, or never, or twice."""
        self._serial = serial = self._serial + 1
        self.sent += 1
        if self._on_send is not None:
            self._on_send(serial, source, target, meta)
        if source not in self._endpoints:
            self._drop(serial, source, target, meta, "crashed")
            return
        if self._faulty and self._blocked(source, target):
            self._drop(serial, source, target, meta, "partition")
            return
        low, high, loss = self._low, self._high, self._loss
        if self._links:
            by_target = self._links.get(source)
            if by_target is not None:
                link = by_target.get(target)
                if link is not None:
                    low, high, loss = link
        rand = self._random
        if loss and rand() < loss:
            self._drop(serial, source, target, meta, "loss")
            return
        deliver = self._endpoints.get(target)
        now = self._time()
        self._in_flight += 1
        flying = self._flying[serial] = [source, target, meta, 1]
        # _arrival, inlined for the first copy (this is the simulator's hottest path)
        when = now + low + (high - low) * rand()
        if self._reorder and rand() < self._reorder:
            when += REORDER_FACTOR * high * rand()
        else:
            ends = (source, target)
            tail = self._link_tail.get(ends, 0.0)
            if when < tail:
                when = tail
            self._link_tail[ends] = when
        if self._schedule_outside is not None:
            self._schedule_outside(when, Outside(
                self._loop, self._arrive, (serial, source, target, data, meta, deliver)))
        else:
            self._call_at(when, self._arrive, serial, source, target, data, meta, deliver)
        if self._duplication and rand() < self._duplication:
            self.duplicated += 1
            self._in_flight += 1
            flying[3] += 1
            self._call_at(self._arrival(source, target, now, low, high), self._arrive,
                          serial, source, target, data, meta, deliver)

    def _arrival(self, source: str, target: str, now: float, low: float,
                 high: float) -> float:
        """When a message sent now arrives: its drawn delay, held back by ``reorder``
        (out of the link's order) or else no earlier than the link's previous message."""
        rand = self._random
        when = now + low + (high - low) * rand()
        if self._reorder and rand() < self._reorder:
            return when + REORDER_FACTOR * high * rand()
        link = (source, target)
        tail = self._link_tail.get(link, 0.0)
        if when < tail:
            when = tail
        self._link_tail[link] = when
        return when

    def _arrive(self, serial: int, source: str, target: str, data: bytes, meta: object,
                deliver: Deliver | None) -> None:
        flying = self._flying.get(serial)
        if flying is None:
            return  # dropped on its way by drop_in_flight, which counted it
        flying[3] -= 1
        if not flying[3]:
            del self._flying[serial]
        self._in_flight -= 1
        if deliver is None or self._endpoints.get(target) is not deliver:
            self._drop(serial, source, target, meta, "crashed")
            return
        if self._faulty and self._blocked(source, target):
            self._drop(serial, source, target, meta, "partition")
            return
        self.delivered += 1
        if self._on_deliver is not None:
            self._on_deliver(serial, source, target, meta)
        deliver(source, data)

    def drop_in_flight(self, serial: int) -> bool:
        """Drop the message ``serial`` (every copy of it) on its way, now: a message a
        teacher picked to lose. False when none of it is on its way any more."""
        flying = self._flying.pop(serial, None)
        if flying is None:
            return False
        source, target, meta, copies = flying
        self._in_flight -= copies
        self._drop(serial, source, target, meta, "chosen")
        return True

    def _drop(self, serial: int, source: str, target: str, meta: object, reason: str) -> None:
        self.dropped += 1
        self.dropped_by_reason[reason] += 1
        if self._on_drop is not None:
            self._on_drop(serial, source, target, meta, reason)

    # ------------------------------------------------------------------ partitions

    def _blocked(self, source: str, target: str) -> bool:
        if source == target:
            return False
        if source in self._isolated or target in self._isolated:
            return True
        cut = self._cuts.get(source)
        if cut is not None and target in cut:
            return True
        groups = self._groups
        if groups is not None:
            group = groups.get(source)
            return group is None or group != groups.get(target)
        return False

    def reachable(self, source: str, target: str) -> bool:
        """Whether a message from ``source`` to ``target`` would pass the partitions."""
        return not (self._faulty and self._blocked(source, target))

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        """Split the network: nodes talk only within their group; unlisted nodes are
        alone. Replaces any previous partition (cuts and isolations stay)."""
        if isinstance(groups, str | bytes) or not isinstance(groups, Sequence):
            raise ValueError(
                f"partition groups must be a list of lists of node ids, got {groups!r}")
        mapping: dict[str, int] = {}
        for index, group in enumerate(groups):
            if isinstance(group, str | bytes) or not isinstance(group, Sequence):
                raise ValueError(
                    f"partition group {index} must be a list of node ids, got {group!r}")
            self._check_known("partition", group)
            for node in group:
                if node in mapping:
                    raise ValueError(f"partition lists node {node!r} in more than one group")
                mapping[node] = index
        self._groups = mapping
        self._faulty = True

    def cut(self, source: str, target: str) -> None:
        """Drop messages from ``source`` to ``target``; the reverse direction still works."""
        self._check_known("cut", (source, target))
        if source == target:
            raise ValueError(f"cut needs two different nodes, got {source!r} twice")
        self._cuts.setdefault(source, set()).add(target)
        self._faulty = True

    def isolate(self, node_id: str) -> None:
        """Cut ``node_id`` off from every other node, both ways."""
        self._check_known("isolate", (node_id,))
        self._isolated.add(node_id)
        self._faulty = True

    def heal(self) -> None:
        """Remove every partition, cut and isolation (latency, loss and links stay)."""
        self._groups = None
        self._cuts = {}
        self._isolated = set()
        self._faulty = False

    def _check_known(self, what: str, nodes: Sequence[object]) -> None:
        for node in nodes:
            if not isinstance(node, str) or node not in self._known:
                known = ", ".join(self._known) or "none"
                raise ValueError(f"{what} names unknown node {node!r}; known nodes: {known}")

    # ------------------------------------------------------------------ link settings

    def set_loss(self, loss: object) -> None:
        self._loss = _probability("loss", loss)
        self._resolve_links()

    def set_latency(self, low: object, high: object) -> None:
        self._low, self._high = _latency("latency", (low, high))
        self._resolve_links()

    def set_duplication(self, duplication: object) -> None:
        self._duplication = _probability("duplication", duplication)

    def set_reorder(self, reorder: object) -> None:
        self._reorder = _probability("reorder", reorder)

    def set_link(self, source: str, target: str, *,
                 latency: object = None,
                 loss: object = None) -> None:
        """Override latency and/or loss on the one-way link ``source`` -> ``target``.

        An argument left as None follows the global setting, so ``set_link(a, b)``
        returns the link to the defaults.
        """
        self._check_known("set_link", (source, target))
        link_latency = None if latency is None else _latency("latency", latency)
        link_loss = None if loss is None else _probability("loss", loss)
        if link_latency is None and link_loss is None:
            self._overrides.pop((source, target), None)
        else:
            self._overrides[(source, target)] = (link_latency, link_loss)
        self._resolve_links()

    def link(self, source: str, target: str) -> tuple[float, float, float]:
        """The effective ``(low latency, high latency, loss)`` of ``source`` -> ``target``."""
        return self._links.get(source, {}).get(target, (self._low, self._high, self._loss))

    def _resolve_links(self) -> None:
        links: dict[str, dict[str, tuple[float, float, float]]] = {}
        for (source, target), (latency, loss) in self._overrides.items():
            low, high = latency if latency is not None else (self._low, self._high)
            links.setdefault(source, {})[target] = (
                low, high, loss if loss is not None else self._loss)
        self._links = links

    @property
    def loss(self) -> float:
        return self._loss

    @property
    def latency(self) -> tuple[float, float]:
        return (self._low, self._high)

    @property
    def duplication(self) -> float:
        return self._duplication

    @property
    def reorder(self) -> float:
        return self._reorder

"""A client history of KV requests made through the HTTP API, for the linearizability
checker.

Each request is recorded when it is sent (``invoke``) and when its answer arrives
(``complete``); the order of these calls is the real-time order the checker needs. What
an answer means for the register model:

* a read answered 200 returned the body, 404 returned "absent"; any other answer is
  dropped (a read that failed changed nothing);
* a write, delete or compare-and-set answered 200 happened (a CAS answering ``false``
  happened and did not swap); a refused connection (status 0) never reached a server,
  so it did not happen; any other answer (no leader, timeout, leadership lost) leaves
  the outcome unknown: it may have taken effect, or not, at any time after it was sent.

A compare-and-set is modelled as the register's CAS, which compares values:
``?cas=0`` (create if absent) expects "absent"; ``?cas=N`` (N > 0, swap if the key's
modify index is still N) expects the value that a read answered with index N (the fuzz
clients only send an index they read; written values are unique, so "modify index is
still N" and "the value is still the one written at N" are the same). A ``?cas=N`` whose
version nobody read is still recorded, never dropped: as a write that happened when it
answered ``true``, did not when it answered ``false``, and whose outcome is unknown
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, unquote

from raftsim.check.invariants import commands_of, put_of
from raftsim.check.linearizability import (
    DEFAULT_MAX_STEPS,
    Event,
    LinearizabilityResult,
    Operation,
    check_history,
    check_operations,
    operations_from_events,
)
from raftsim.core.messages import Entry, EntryKind
from raftsim.runtime.kv import KVStore

__all__ = ["KvHistory", "KvOp", "kv_op_of_request", "legal_read_values", "resolve_unknown"]

KV_PREFIX = "/v1/kv/"


@dataclass(frozen=True, slots=True)
class KvOp:
    """What a KV request asks, in the register model's words."""

    f: str  # read, write, cas, delete
    key: str
    value: object = None  # write: the value; cas: (expected, new)
    #: a write that happens only if a condition the model cannot check holds (a CAS on
    #: an index whose value is unknown): ``false`` means it did not happen
    conditional: bool = False


def kv_op_of_request(method: str, path: str, body: bytes,
                     versions: Mapping[tuple[str, int], str] | None = None) -> KvOp | None:
    """The register operation an HTTP request is, or None when it is not one we model
    (``?stale`` reads, anything outside /v1/kv/). ``versions``: the value each (key,
    modify index) was read with, for ``?cas=N``."""
    path_only, _, query = path.partition("?")
    if not path_only.startswith(KV_PREFIX):
        return None
    key = unquote(path_only[len(KV_PREFIX):])
    params = dict(parse_qsl(query, keep_blank_values=True))
    method = method.upper()
    if method == "GET":
        if "stale" in params:
            return None
        return KvOp("read", key)
    value = body.decode("utf-8", errors="replace")
    if method == "PUT":
        cas = params.get("cas")
        if cas is None:
            return KvOp("write", key, value)
        if cas == "0":
            return KvOp("cas", key, (None, value))
        if not cas.isdigit():
            return None  # refused with 400: it changes nothing
        expected = (versions or {}).get((key, int(cas)))
        if expected is not None:
            return KvOp("cas", key, (expected, value))
        return KvOp("write", key, value, conditional=True)
    if method == "DELETE":
        return KvOp("delete", key)
    return None


@dataclass(slots=True)
class _Pending:
    client: str
    op: KvOp
    tag: object


class KvHistory:
    """Invocations and completions, in the order they happened."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        #: the tag given at invoke, per event index (steps, for the reproducer)
        self.tags: list[object] = []
        self._open: dict[str, _Pending] = {}

    def invoke(self, client: str, op: KvOp, time: float, tag: object = None) -> None:
        if client in self._open:
            raise ValueError(f"client {client!r} already has a request outstanding")
        self._open[client] = _Pending(client, op, tag)
        self.events.append(Event("invoke", client, op.f, op.key, op.value, time))  # type: ignore[arg-type]
        self.tags.append(tag)

    def complete(self, client: str, status: int, body: bytes, time: float) -> None:
        """The answer to ``client``'s outstanding request (status 0: refused)."""
        pending = self._open.pop(client)
        op = pending.op
        kind, value = _outcome(op, status, body)
        self.events.append(Event(kind, client, op.f, op.key, value, time))  # type: ignore[arg-type]
        self.tags.append(pending.tag)

    def is_open(self, client: str) -> bool:
        """Whether ``client`` has a request that has not completed."""
        return client in self._open

    @property
    def outstanding(self) -> int:
        return len(self._open)

    def check(self, *, max_steps: int = DEFAULT_MAX_STEPS) -> LinearizabilityResult:
        return check_history(self.events, max_steps=max_steps)

    def operations(self) -> list[Operation]:
        return operations_from_events(self.events)

    def tag_of(self, op: Operation) -> object:
        """The tag the operation was invoked with."""
        return self.tags[op.call]


def _outcome(op: KvOp, status: int, body: bytes) -> tuple[str, object]:
    if op.f == "read":
        if status == 200:
            return "ok", body.decode("utf-8", errors="replace")
        if status == 404:
            return "ok", None
        return "fail", None
    if status == 0 or 400 <= status < 500:
        return "fail", None  # never reached a server / rejected before proposing
    if status == 200:
        answer = body.strip()
        if op.conditional:
            if answer == b"true":
                return "ok", None
            if answer == b"false":
                return "fail", None
            return "info", None
        if op.f == "cas":
            if answer in (b"true", b"false"):
                return "ok", answer == b"true"
            return "info", None
        return "ok", None
    return "info", None


def legal_read_values(operations: Sequence[Operation], read: Operation,
                      *, candidates: Sequence[object] | None = None,
                      max_steps: int = 200_000) -> list[object]:
    """The values (of ``candidates``; default: absent, then every value written, in
    order) that ``read`` could have returned for its key's history to be linearizable,
    the other operations as they are. Empty when none would do."""
    ops = [op for op in operations if op.key == read.key]
    if candidates is None:
        candidates = [None]
        for op in ops:
            value = op.input[1] if op.f == "cas" and isinstance(op.input, tuple) else op.input
            if op.f in ("write", "cas") and value not in candidates:
                candidates.append(value)
    legal = []
    for value in candidates:
        trial = [replace(op, output=value) if op is read else op for op in ops]
        if check_operations(trial, max_steps=max_steps).verdict == "ok":
            legal.append(value)
    return legal


def resolve_unknown(events: Sequence[Event],
                    committed: Sequence[tuple[Entry | None, float]]) -> list[Event]:
    """``events`` with unknown outcomes settled by the committed log, where it can.

    In the simulator we know what a client does not: whether the write it gave up on
    was committed, and when. A write or create-if-absent whose value was committed is
    completed at the moment it was first committed (the moment a correct Raft makes it
    visible to every later linearizable read), with its outcome from replaying the
    log; one that was never committed never happened. Deletes carry no value to find
    them by and stay unknown. This keeps the search small: unknown outcomes are what
    makes it exponential.

    ``committed`` is (entry, time first committed) for index 1, 2, ...
    (:meth:`InvariantChecker.committed_log`).
    """
    puts: dict[tuple[str, str], tuple[float, bool | None]] = {}
    store = KVStore()
    replayable = True
    for index, (entry, when) in enumerate(committed, start=1):
        if entry is None:
            replayable = False
            continue
        if entry.kind != EntryKind.COMMAND:
            store.advance(index)
            continue
        results: list[bool] = store.apply_batch(index, entry.data)
        commands = commands_of(entry.data)
        for position, command in enumerate(commands):
            put = put_of(command)
            if put is None:
                continue
            result = (results[position] if replayable and len(results) == len(commands)
                      else None)
            puts.setdefault((put[0], put[1].decode("utf-8", errors="replace")),
                            (when, result))
    timed: list[tuple[float, int, Event]] = []
    invokes: dict[str, Event] = {}
    settled: set[str] = set()
    order = 0
    extra = len(events)
    for event in events:
        order += 1
        if event.type == "invoke":
            invokes[event.client] = event
            timed.append((event.time, order, event))
            continue
        invoke = invokes.pop(event.client)
        if event.type == "info":
            outcome = _settle(invoke, puts)
            if outcome is not None:
                extra += 1
                kind, output, when = outcome
                when = when if kind == "ok" else event.time
                timed.append((when, extra + order,
                              Event(kind, event.client, event.f, event.key,  # type: ignore[arg-type]
                                    output, when)))
                settled.add(event.client)
                continue
        timed.append((event.time, order, event))
    for client, invoke in invokes.items():  # never answered at all
        outcome = _settle(invoke, puts)
        if outcome is not None:
            extra += 1
            kind, output, when = outcome
            timed.append((when, extra + order,
                          Event(kind, client, invoke.f, invoke.key, output, when)))  # type: ignore[arg-type]
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]


def _settle(invoke: Event, puts: dict[tuple[str, str], tuple[float, bool | None]]
            ) -> tuple[str, object, float] | None:
    """(type, value, time) of an unknown operation, from the committed log."""
    if invoke.f == "write":
        found = puts.get((invoke.key, str(invoke.value)))
        if found is None or found[1] is False:  # never committed, or a CAS that failed
            return "fail", None, invoke.time
        return "ok", None, found[0]
    if invoke.f == "cas":
        assert isinstance(invoke.value, tuple | list)
        found = puts.get((invoke.key, str(invoke.value[1])))
        if found is None:
            return "fail", None, invoke.time
        if found[1] is None:
            return None
        return "ok", found[1], found[0]
    return None

"""Linearizability of key-value client histories.

The search is Wing & Gong's, with Lowe's memoization: walk the history in real-time
order, try to linearize each pending call whose effect fits the register, and backtrack
when a return is reached before its call was linearized. A cache of (set of linearized
operations, register value) prunes every branch that re-reaches a configuration already
explored, which is what makes the exponential search usable (porcupine and Knossos do the
same). Linearizability is local (Herlihy & Wing), so each key is checked on its own: many
small searches instead of one hopeless one.

The budget is counted in search steps, not seconds, so a verdict (including "unknown")
is the same on every machine and every run, like everything else in the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal, NamedTuple

EventType = Literal["invoke", "ok", "fail", "info"]
OpName = Literal["read", "write", "cas", "delete"]
Verdict = Literal["ok", "violation", "unknown"]

DEFAULT_MAX_STEPS = 2_000_000

_OP_NAMES: tuple[str, ...] = ("cas", "delete", "read", "write")
_EVENT_TYPES: tuple[str, ...] = ("fail", "info", "invoke", "ok")


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a Jepsen-style history. The position in the list is the real-time
    order; ``time`` only labels the drawing."""

    type: EventType
    client: str
    f: OpName
    key: str
    value: object = None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion, as the search sees it.

    ``call`` and ``ret`` are positions in real-time order (event indices when built from
    events). ``ret`` is None when the outcome is unknown: the operation may take effect
    at any point after ``call``, or never, and ``output`` is ignored. ``input`` is the
    written value for write, ``(expected, new)`` for cas, None otherwise; ``output`` is
    the value read (None: absent) or, for cas, whether it swapped.
    """

    client: str
    f: OpName
    key: str
    input: object
    output: object
    call: int
    ret: int | None
    call_time: float | None = None
    ret_time: float | None = None

    @property
    def label(self) -> str:
        """Short text for messages and the drawing, e.g. ``read -> "1"``."""
        outcome = "?" if self.ret is None else None
        if self.f == "read":
            return f"read -> {outcome or _show(self.output)}"
        if self.f == "cas":
            expected, new = _cas_input(self.input)
            return f"cas {_show(expected)} to {_show(new)} -> {outcome or self.output}"
        text = "delete" if self.f == "delete" else f"write {_show(self.input)}"
        return text if outcome is None else f"{text} -> ?"


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict. For a violation, ``key`` names the failing key and ``history`` holds
    a reduced sub-history of its operations that is still not linearizable."""

    verdict: Verdict
    key: str | None
    history: list[Operation] = field(default_factory=list)
    steps: int = 0
    message: str = ""


def check_history(
    events: Sequence[Event], *, max_steps: int = DEFAULT_MAX_STEPS
) -> LinearizabilityResult:
    """Check a Jepsen-style event history; raises ValueError when it is malformed."""
    return check_operations(operations_from_events(events), max_steps=max_steps)


def operations_from_events(events: Sequence[Event]) -> list[Operation]:
    """Pair each invoke with its completion. ``fail`` drops the operation (it did not
    happen); ``info`` or no completion at all leaves its outcome unknown."""
    pending: dict[str, int] = {}
    operations: list[Operation] = []
    for index, event in enumerate(events):
        where = f"event {index}"
        if event.type not in _EVENT_TYPES:
            raise ValueError(f"{where}: unknown type {event.type!r}; expected one of "
                             f"{', '.join(_EVENT_TYPES)}")
        if event.f not in _OP_NAMES:
            raise ValueError(f"{where}: unknown f {event.f!r}; expected one of "
                             f"{', '.join(_OP_NAMES)}")
        if event.type == "invoke":
            if event.client in pending:
                raise ValueError(f"{where}: client {event.client!r} invokes {event.f} while "
                                 f"its invoke at event {pending[event.client]} is still "
                                 "outstanding (one operation per client at a time)")
            _normalize_input(event.f, event.value, where)
            pending[event.client] = index
            continue
        start = pending.pop(event.client, None)
        if start is None:
            raise ValueError(f"{where}: {event.type} from client {event.client!r} "
                             "with no outstanding invoke")
        invoke = events[start]
        if (invoke.f, invoke.key) != (event.f, event.key):
            raise ValueError(f"{where}: {event.type} {event.f} on key {event.key!r} does not "
                             f"match the invoke at event {start} ({invoke.f} on key "
                             f"{invoke.key!r})")
        if event.type == "fail":
            continue
        if event.type == "info":
            operations.append(_unknown_operation(invoke, start))
            continue
        operations.append(Operation(
            client=invoke.client, f=invoke.f, key=invoke.key,
            input=_normalize_input(invoke.f, invoke.value, f"event {start}"),
            output=_normalize_output(invoke.f, event.value, where),
            call=start, ret=index, call_time=invoke.time, ret_time=event.time,
        ))
    for start in pending.values():
        operations.append(_unknown_operation(events[start], start))
    operations.sort(key=lambda op: op.call)
    return operations


def check_operations(
    operations: Iterable[Operation], *, max_steps: int = DEFAULT_MAX_STEPS
) -> LinearizabilityResult:
    """Check operations built directly (see ``Operation``); keys in sorted order, one
    step budget shared by all keys and by the reduction of a failing key."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    by_key: dict[str, list[Operation]] = {}
    for index, op in enumerate(operations):
        _validate_operation(op, f"operation {index}")
        by_key.setdefault(op.key, []).append(op)
    used = 0
    for key in sorted(by_key):
        ops = sorted(by_key[key], key=lambda op: op.call)
        outcome = _search(ops, max_steps - used)
        used += outcome.steps
        if outcome.linearizable is None:
            return LinearizabilityResult(
                "unknown", key, [], used,
                f"search budget of {max_steps} steps ran out on key {_show(key)} before a "
                f"verdict; pass max_steps={max_steps * 10} (or more) to check_history to "
                "search further",
            )
        if not outcome.linearizable:
            reduced, spent, stopped = _reduce(ops, max_steps - used)
            used += spent
            message = f"key {_show(key)}: no linearization; {_explain(reduced)}"
            if stopped:
                message += " (reduction stopped early: the step budget ran out)"
            return LinearizabilityResult("violation", key, reduced, used, message)
    count = sum(len(ops) for ops in by_key.values())
    return LinearizabilityResult(
        "ok", None, [], used,
        f"linearizable: {count} operations on {len(by_key)} key(s), {used} search steps",
    )


# --- ingestion -------------------------------------------------------------------------


def _unknown_operation(invoke: Event, start: int) -> Operation:
    return Operation(
        client=invoke.client, f=invoke.f, key=invoke.key,
        input=_normalize_input(invoke.f, invoke.value, f"event {start}"),
        output=None, call=start, ret=None, call_time=invoke.time,
    )


def _normalize_input(f: str, value: object, where: str) -> object:
    if f == "write":
        if value is None:
            raise ValueError(f"{where}: write of None; use delete to make a key absent")
        return _hashable(value, where)
    if f == "cas":
        if not isinstance(value, tuple | list) or len(value) != 2:
            raise ValueError(f"{where}: cas needs (expected, new), got {value!r}")
        return (_hashable(value[0], where), _hashable(value[1], where))
    return None


def _normalize_output(f: str, value: object, where: str) -> object:
    if f == "read":
        return _hashable(value, where)
    if f == "cas":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: a completed cas reports True or False, got {value!r}")
        return value
    return None


def _hashable(value: object, where: str) -> object:
    # Register values go into the search cache as keys.
    try:
        hash(value)
    except TypeError:
        raise ValueError(f"{where}: value {value!r} is not hashable") from None
    return value


def _validate_operation(op: Operation, where: str) -> None:
    if op.f not in _OP_NAMES:
        raise ValueError(f"{where}: unknown f {op.f!r}; expected one of {', '.join(_OP_NAMES)}")
    if op.ret is not None and op.ret <= op.call:
        raise ValueError(f"{where}: returns at {op.ret}, not after its call at {op.call}")
    _normalize_input(op.f, op.input, where)
    if op.ret is not None:
        _normalize_output(op.f, op.output, where)


def _cas_input(value: object) -> tuple[object, object]:
    assert isinstance(value, tuple | list)
    return value[0], value[1]


# --- the search ------------------------------------------------------------------------

_READ, _WRITE, _DELETE, _CAS = range(4)
_CODES = {"read": _READ, "write": _WRITE, "delete": _DELETE, "cas": _CAS}


class _Move(NamedTuple):
    """An operation reduced to what the register step needs."""

    code: int
    a: object  # write: value; cas: expected
    b: object  # cas: new
    output: object
    known: bool


class _Outcome(NamedTuple):
    linearizable: bool | None  # None: the budget ran out first
    steps: int


def _move(op: Operation) -> _Move:
    a, b = _cas_input(op.input) if op.f == "cas" else (op.input, None)
    return _Move(_CODES[op.f], a, b, op.output, op.ret is not None)


def _step(move: _Move, state: object) -> tuple[bool, object]:
    """The register model: may ``move`` return what it returned from ``state``, and what
    does the register hold afterwards. Unknown outcomes accept any output."""
    if move.code == _READ:
        return (not move.known or move.output == state), state
    if move.code == _WRITE:
        return True, move.a
    if move.code == _DELETE:
        return True, None
    swapped = state == move.a
    return (not move.known or move.output == swapped), (move.b if swapped else state)


def _search(ops: Sequence[Operation], limit: int) -> _Outcome:
    """Wing & Gong over a doubly linked list of call/return entries (dancing links, so
    lifting an operation out and putting it back are both O(1))."""
    # An unknown read changes nothing and may return anything: it cannot matter.
    ops = [op for op in ops if op.ret is not None or op.f != "read"]
    # The register only ever holds absent or a value some operation wrote, so seeing
    # anything else fails at once, however concurrent the history is.
    produced = {value for op in ops for value in _produced(op)}
    if any(v is not None and v not in produced for op in ops for v in _observed(op)):
        return _Outcome(False, 1) if limit >= 1 else _Outcome(None, 0)
    moves = [_move(op) for op in ops]
    # At equal positions calls sort before returns: such operations count as concurrent.
    entries = sorted(
        [(op.call, 0, i) for i, op in enumerate(ops)]
        + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None]
    )
    size = len(entries)
    nxt = list(range(1, size + 2)) + [size + 1]  # node 0 is the head, size + 1 the tail
    prv = [0, *range(size + 1)]
    is_call = [False] * (size + 2)
    op_of = [0] * (size + 2)
    match = [0] * (size + 2)  # call node -> its return node, 0 when the outcome is unknown
    return_node: dict[int, int] = {}
    for node, (_, kind, i) in enumerate(entries, start=1):
        op_of[node] = i
        if kind == 0:
            is_call[node] = True
        else:
            return_node[i] = node
    for node in range(1, size + 1):
        if is_call[node]:
            match[node] = return_node.get(op_of[node], 0)

    unlinearized = len(return_node)
    if unlinearized == 0:
        return _Outcome(True, 0)
    state: object = None
    linearized = 0
    cache: set[tuple[int, object]] = set()
    stack: list[tuple[int, object]] = []
    node = nxt[0]
    steps = 0
    while True:
        steps += 1
        if steps > limit:
            return _Outcome(None, limit)
        if is_call[node]:
            i = op_of[node]
            fits, after = _step(moves[i], state)
            if fits:
                marked = linearized | (1 << i)
                if (marked, after) not in cache:
                    cache.add((marked, after))
                    stack.append((node, state))
                    state, linearized = after, marked
                    nxt[prv[node]], prv[nxt[node]] = nxt[node], prv[node]
                    ret = match[node]
                    if ret:
                        nxt[prv[ret]], prv[nxt[ret]] = nxt[ret], prv[ret]
                        unlinearized -= 1
                        if unlinearized == 0:
                            return _Outcome(True, steps)
                    node = nxt[0]
                    continue
            node = nxt[node]
        else:
            # A return whose call is not linearized yet: this branch is dead.
            if not stack:
                return _Outcome(False, steps)
            node, state = stack.pop()
            linearized &= ~(1 << op_of[node])
            ret = match[node]
            if ret:
                nxt[prv[ret]] = prv[nxt[ret]] = ret
                unlinearized += 1
            nxt[prv[node]] = prv[nxt[node]] = node
            node = nxt[node]


# --- reduction and explanation ---------------------------------------------------------


def _produced(op: Operation) -> tuple[object, ...]:
    """Values ``op`` may leave in the register (None stands for absent)."""
    if op.f == "write":
        return (op.input,)
    if op.f == "delete":
        return (None,)
    if op.f == "cas" and (op.ret is None or op.output is True):
        return (_cas_input(op.input)[1],)
    return ()


def _observed(op: Operation) -> tuple[object, ...]:
    """Values ``op`` reports having seen in the register."""
    if op.ret is None:
        return ()
    if op.f == "read":
        return (op.output,)
    if op.f == "cas" and op.output is True:
        return (_cas_input(op.input)[0],)
    return ()


def _keeps_provenance(candidate: Sequence[Operation], producible: set[object]) -> bool:
    """Whether every value observed in ``candidate`` that some operation of the full
    history wrote is still written by one in ``candidate``. Without this rule a stale
    read would shrink to a lone read of a value that looks as if it were never written:
    smaller, but it hides the write that the read missed."""
    produced = {value for op in candidate for value in _produced(op)}
    return all(
        value is None or value not in producible or value in produced
        for op in candidate
        for value in _observed(op)
    )


def _reduce(ops: list[Operation], budget: int) -> tuple[list[Operation], int, bool]:
    """Greedily drop operations while the rest stays non-linearizable, until no single
    drop works. Returns the sub-history, the steps spent, and whether the budget ran out."""
    producible = {value for op in ops for value in _produced(op)}
    current = list(ops)
    spent = 0
    changed = True
    while changed:
        changed = False
        for index in range(len(current) - 1, -1, -1):
            candidate = current[:index] + current[index + 1:]
            if not candidate or not _keeps_provenance(candidate, producible):
                continue
            outcome = _search(candidate, budget - spent)
            spent += outcome.steps
            if outcome.linearizable is None:
                return current, spent, True
            if not outcome.linearizable:
                current = candidate
                changed = True
    return current, spent, False


def _explain(ops: Sequence[Operation]) -> str:
    """A one-line reason for a non-linearizable sub-history: a value nobody wrote, a
    value read before anyone wrote it, or a stale value; otherwise a general statement."""
    for observer in ops:
        for value in _observed(observer):
            seen = _observation(observer, value)
            writers = [op for op in ops if value in _produced(op)]
            if value is not None and not writers:
                return f"{seen}, a value no write in the history produced"
            assert observer.ret is not None
            if value is not None and all(op.call > observer.ret for op in writers):
                return f"{seen} before any write of {_show(value)} began"
            for later in ops:
                if _overwrites(later, value, observer, writers):
                    if later.f == "read":
                        earlier = f"a read by {later.client} had returned {_show(later.output)}"
                    else:
                        earlier = f"{later.label} by {later.client} completed"
                    return f"{seen} after {earlier}"
    return f"no order of these {len(ops)} operations fits a single register"


def _overwrites(
    op: Operation, value: object, observer: Operation, writers: Sequence[Operation]
) -> bool:
    """Whether the register surely stopped holding ``value`` before ``observer`` began:
    ``op`` completed before the observer's call, wrote or saw something else, and every
    write of ``value`` completed before ``op`` began (the initial absent value precedes
    everything), so nothing could have put ``value`` back."""
    if op.ret is None or op.ret >= observer.call:
        return False
    other = _produced(op) or _observed(op)
    if not other or other[0] == value:
        return False
    return all(w.ret is not None and w.ret < op.call for w in writers)


def _observation(op: Operation, value: object) -> str:
    if op.f == "read":
        return f"read by {op.client} returned {_show(value)}"
    return f"cas by {op.client} found {_show(value)} and swapped"


def _show(value: object) -> str:
    if value is None:
        return "absent"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


# --- drawing ---------------------------------------------------------------------------


def render_history_html(result: LinearizabilityResult) -> str:
    """A self-contained HTML fragment: the verdict, the message, and for a violation the
    failing key's operations as bars from call to return, one lane per client.

    Columns are the order of events, not scaled times: the order is what the checker
    judged, and it keeps brief operations visible. Times appear in each bar's tooltip."""
    colour = {"ok": "#2a7a2a", "violation": "#b02a2a", "unknown": "#8a6a10"}[result.verdict]
    parts = [
        '<div style="font:13px/1.4 system-ui,sans-serif;color:#222;max-width:960px">',
        f'<p style="margin:0 0 8px 0"><strong style="color:{colour}">'
        f"{escape(result.verdict)}</strong>: {escape(result.message)}</p>",
    ]
    if result.history:
        parts.append(_timeline(result.history))
    parts.append("</div>")
    return "\n".join(parts)


def _timeline(ops: Sequence[Operation]) -> str:
    ops = sorted(ops, key=lambda op: op.call)
    points = sorted({op.call for op in ops} | {op.ret for op in ops if op.ret is not None})
    column = {point: rank for rank, point in enumerate(points)}
    columns = len(points) + (1 if any(op.ret is None for op in ops) else 0)
    width = 100.0 / columns
    # An unknown operation never ends, so a client that carried on after it needs a
    # second lane to keep bars from covering each other.
    lanes: list[tuple[str, list[tuple[int, int, Operation]]]] = []
    for op in ops:
        start = column[op.call]
        end = columns if op.ret is None else column[op.ret] + 1
        for client, bars in lanes:
            if client == op.client and bars[-1][1] <= start:
                bars.append((start, end, op))
                break
        else:
            lanes.append((op.client, [(start, end, op)]))
    first_call = {op.client: op.call for op in reversed(ops)}
    lanes.sort(key=lambda lane: first_call[lane[0]])  # stable: a client's lanes stay together
    rows = []
    named: set[str] = set()
    for client, bars in lanes:
        name = "" if client in named else client
        named.add(client)
        cells = "".join(_bar(op, start * width, (end - start) * width) for start, end, op in bars)
        rows.append(
            '<div style="display:flex;align-items:center;height:26px">'
            '<div style="width:90px;flex:none;overflow:hidden;text-overflow:ellipsis;'
            f'white-space:nowrap;font-weight:600">{escape(name)}</div>'
            '<div style="position:relative;flex:1;height:22px;border-bottom:1px solid #eee">'
            f"{cells}</div></div>"
        )
    legend = (
        '<p style="margin:6px 0 0 0;color:#666;font-size:12px">Bars run from invoke to '
        "completion in event order; a dashed bar that fades out has an unknown outcome.</p>"
    )
    return "".join(rows) + legend


def _bar(op: Operation, left: float, width: float) -> str:
    if op.ret is None:
        look = ("background:linear-gradient(to right,#f6e3c8,rgba(246,227,200,0));"
                "border:1px dashed #b07a2a;border-right:none")
        ended = "outcome unknown"
    else:
        look = "background:#dbe9f6;border:1px solid #4a78a8"
        ended = f"returned at {_when(op.ret_time, op.ret)}"
    title = f"{op.client}: {op.label}; invoked at {_when(op.call_time, op.call)}, {ended}"
    return (
        f'<div title="{escape(title)}" style="position:absolute;top:2px;height:16px;'
        f"left:{left:.3f}%;width:calc({width:.3f}% - 3px);{look};border-radius:3px;"
        'padding:0 3px;font-size:12px;line-height:16px;overflow:hidden;white-space:nowrap;'
        f'box-sizing:border-box">{escape(op.label)}</div>'
    )


def _when(time: float | None, position: int) -> str:
    return f"event {position}" if time is None else f"t={time:g} (event {position})"

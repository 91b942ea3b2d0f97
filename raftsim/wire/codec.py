"""msgpack encoding of every Raft message.

A Raft message travels as a msgpack-rpc notification ``[2, method, params]``: the method
is the message's class name (``"AppendEntries"``), the params are its fields in
declaration order, and an entry is ``[term, index, kind, data]``. bytes travel as msgpack
bin, str as str, bool as bool. Decoding is exact, because the bytes may come from anyone:
an int field must be an int in [0, 2**63) (not a bool), a bool a bool, bytes bytes, an
entry kind a valid :class:`EntryKind`; anything else raises :class:`MessageError`.

Then what the fields say together is checked (``_MESSAGE_CHECKS``), and the payloads the
core or the state machine will decode (``payload.py``): an AppendEntries' entries follow
its ``prev_log_index`` one by one with terms that never go down nor pass the message's
term, and each carries a payload a server would send; an InstallSnapshot's configuration
and data decode. A message that fails is refused whole, before any server acts on it: a
forged one must not reach a log, a disk or a state machine. Terms stop below 2**63 so a
forged huge term cannot leave a cluster with no next term to elect a leader in.

Speed: the simulator pushes ~100,000 messages per wall second through here. So each
message type gets its own encoder and decoder, generated once at import from the
dataclass's fields (as ``dataclasses`` generates ``__init__``): straight-line code with
the entries loop inlined, no ``fields()``/``asdict`` at run time; a bad value falls off the
fast path into a slow one that says exactly what was wrong. Deriving the code from the
fields also means a field added to ``core/messages.py`` is on the wire at once, and a
field of a type the wire does not know fails at import rather than in a run.

Decoded messages and entries are built without running the frozen dataclass
``__init__`` (its per-field ``object.__setattr__`` costs more than the msgpack decode) by
setting the slots directly, as pickle does. That is done only for frozen slotted
dataclasses without ``__post_init__``, where it builds exactly what ``__init__`` would;
any other class is built by calling it (see :data:`FAST_CONSTRUCTION`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

import msgpack

from raftsim.core.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    Entry,
    EntryKind,
    InstallSnapshot,
    Message,
    RequestVote,
)
from raftsim.wire.framing import (
    NOTIFICATION,
    Notification,
    WireError,
    describe_value,
    frame_from_object,
    unpack_whole,
)
from raftsim.wire.payload import (
    MAX_UINT,
    command_problem,
    configuration_problem,
    snapshot_configuration_problem,
    snapshot_data_problem,
)


class MessageError(WireError):
    """A well-formed frame that is not a valid Raft message: unknown method, wrong
    number of params, or a param of the wrong type or range."""


# What each field annotation in core/messages.py is on the wire. (The annotations are
# strings there, under ``from __future__ import annotations``; the objects are here in
# case that ever changes.)
_UINT, _STR, _BOOL, _BYTES, _ENTRY_KIND, _ENTRIES = (
    "uint",
    "str",
    "bool",
    "bytes",
    "entry kind",
    "entries",
)
_WIRE_KINDS: Final[dict[object, str]] = {
    "int": _UINT,
    "str": _STR,
    "bool": _BOOL,
    "bytes": _BYTES,
    "EntryKind": _ENTRY_KIND,
    "tuple[Entry, ...]": _ENTRIES,
    int: _UINT,
    str: _STR,
    bool: _BOOL,
    bytes: _BYTES,
    EntryKind: _ENTRY_KIND,
    tuple[Entry, ...]: _ENTRIES,
}
_ENTRY_KINDS: Final[dict[int, EntryKind]] = {int(kind): kind for kind in EntryKind}
_ENTRY_KIND_NAMES: Final = ", ".join(f"{k}={v.name}" for k, v in _ENTRY_KINDS.items())
_EXPECTED: Final = {
    _UINT: "an int in [0, 2**63)",
    _STR: "a str",
    _BOOL: "a bool",
    _BYTES: "bin",
    _ENTRY_KIND: f"an EntryKind ({_ENTRY_KIND_NAMES})",
    _ENTRIES: "an array of entries",
}

_Layout = tuple[tuple[str, str], ...]


def _layout(cls: type) -> _Layout:
    """(field name, wire kind) for each field of ``cls``, in declaration order."""
    layout = []
    for field in dataclasses.fields(cls):
        kind = _WIRE_KINDS.get(field.type)
        if kind is None or (kind == _ENTRIES and cls is Entry):
            raise TypeError(
                f"raftsim.wire has no encoding for {cls.__name__}.{field.name}: {field.type}"
            )
        layout.append((field.name, kind))
    return tuple(layout)


_ENTRY_LAYOUT: Final = _layout(Entry)


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...] | None:
    """Setters for each field's slot, if an instance can safely be built without
    ``__init__`` (see the module docstring); None otherwise."""
    params = getattr(cls, "__dataclass_params__", None)
    names = tuple(field.name for field in dataclasses.fields(cls))
    if (
        params is None
        or not params.frozen
        or cls.__dict__.get("__slots__") != names
        or hasattr(cls, "__post_init__")
    ):
        return None
    return tuple(cls.__dict__[name].__set__ for name in names)


#: Whether decoded instances of each type are built by setting slots (the fast path).
FAST_CONSTRUCTION: Final[dict[str, bool]] = {
    cls.__name__: _slot_setters(cls) is not None for cls in (Entry, *MESSAGE_TYPES)
}


# ---------------------------------------------------------------- the slow path: errors


def _value_ok(kind: str, value: object) -> bool:
    if kind == _UINT:
        return type(value) is int and 0 <= value <= MAX_UINT
    if kind == _STR:
        return type(value) is str
    if kind == _BOOL:
        return type(value) is bool
    if kind == _BYTES:
        return type(value) is bytes
    if kind == _ENTRY_KIND:
        return type(value) is int and value in _ENTRY_KINDS
    return type(value) is list


def _record_problem(cls: type, layout: _Layout, value: object, where: str) -> str | None:
    """What is wrong with ``value`` as the wire form of a ``cls``, or None."""
    names = ", ".join(name for name, _ in layout)
    if not isinstance(value, list):
        return f"{where} must be an array [{names}], got {describe_value(value)}"
    if len(value) != len(layout):
        return f"{where} takes {len(layout)} params [{names}], got {len(value)}"
    for (name, kind), item in zip(layout, value, strict=True):
        if not _value_ok(kind, item):
            return f"{where}.{name} must be {_EXPECTED[kind]}, got {describe_value(item)}"
    for (name, kind), item in zip(layout, value, strict=True):
        if kind == _ENTRIES:
            for position, entry in enumerate(item):
                problem = _record_problem(
                    Entry, _ENTRY_LAYOUT, entry, f"{where}.{name}[{position}]"
                )
                if problem is not None:
                    return problem
    return None


def _invalid(cls: type, layout: _Layout, params: object) -> MessageError:
    """The error for params that fell off a decoder's fast path."""
    problem = _record_problem(cls, layout, params, cls.__name__)
    return MessageError(problem or f"{cls.__name__} params are invalid")


# ---------------------------------------------------------------- what fields say together


def _append_entries_problem(m: AppendEntries) -> str | None:
    """Entries that could not be appended as they are (an index gap fails the log's
    append), terms no leader could have sent, or payloads a server would not send.
    (Every follower runs this on every AppendEntries: the loop says nothing until it
    finds a problem, then ``_entry_problem`` says what.)"""
    top = m.term
    if m.prev_log_term > top:
        return f"prev_log_term {m.prev_log_term} is above the message's term {top}"
    index, term = m.prev_log_index, m.prev_log_term
    command, noop = EntryKind.COMMAND, EntryKind.NOOP
    for entry in m.entries:
        index += 1
        entry_term = entry.term
        kind = entry.kind
        if (entry.index != index or not term <= entry_term <= top
                or (command_problem(entry.data) is not None if kind is command
                    else entry.data != b"" if kind is noop
                    else configuration_problem(entry.data) is not None)):
            return _entry_problem(m, index - m.prev_log_index - 1)
        term = entry_term
    return None


def _entry_problem(m: AppendEntries, position: int) -> str:
    """What is wrong with ``m.entries[position]``, the first entry that is wrong."""
    entry = m.entries[position]
    where = f"entries[{position}]"
    before = m.entries[position - 1].term if position else m.prev_log_term
    if entry.index != m.prev_log_index + position + 1:
        return f"{where}.index must be {m.prev_log_index + position + 1}, got {entry.index}"
    if entry.term > m.term:
        return f"{where}.term {entry.term} is above the message's term {m.term}"
    if entry.term < before:
        return f"{where}.term {entry.term} is below the term before it ({before})"
    if entry.kind is EntryKind.COMMAND:
        return f"{where} is not a valid command: {command_problem(entry.data)}"
    if entry.kind is EntryKind.NOOP:
        return f"{where}: a NOOP entry carries no data"
    return f"{where} is not a valid configuration: {configuration_problem(entry.data)}"


def _install_snapshot_problem(m: InstallSnapshot) -> str | None:
    """A snapshot travels in chunks: its configuration (sent with every chunk) is checked
    here, and its data too when one message carries all of it; the data of a snapshot in
    several chunks can only be checked once assembled, which the core does with the same
    ``payload.snapshot_data_problem`` (the runtime hands it in)."""
    if m.last_included_term > m.term:
        return (f"last_included_term {m.last_included_term} is above the message's term "
                f"{m.term}")
    problem = snapshot_configuration_problem(m.configuration, m.last_included_index)
    if problem is not None:
        return f"configuration is not valid: {problem}"
    if m.offset == 0 and m.done:
        problem = snapshot_data_problem(m.data)
        if problem is not None:
            return f"data is not a valid snapshot: {problem}"
    return None


def _request_vote_problem(m: RequestVote) -> str | None:
    if m.last_log_term > m.term:
        return f"last_log_term {m.last_log_term} is above the message's term {m.term}"
    return None


#: Checks of a decoded message as a whole: what is wrong with it, or None.
_MESSAGE_CHECKS: Final[dict[type, Callable[[Any], str | None]]] = {
    AppendEntries: _append_entries_problem,
    InstallSnapshot: _install_snapshot_problem,
    RequestVote: _request_vote_problem,
}


def _refuse(cls: type, problem: str) -> MessageError:
    return MessageError(f"{cls.__name__}: {problem}")


# ---------------------------------------------------------------- generated code


def _test(kind: str, v: str) -> str:
    """The fast-path test that local ``v`` is a valid value of ``kind``."""
    return {
        _UINT: f"type({v}) is int and 0 <= {v} <= max_uint",
        _STR: f"type({v}) is str",
        _BOOL: f"type({v}) is bool",
        _BYTES: f"type({v}) is bytes",
        _ENTRY_KIND: f"type({v}) is int and {v} in entry_kinds",
        _ENTRIES: f"type({v}) is list",
    }[kind]


def _build_lines(cls_name: str, prefix: str, values: list[str], fast: bool) -> list[str]:
    """Lines that leave a new ``cls_name`` built from ``values`` in local ``prefix``."""
    if not fast:
        return [f"{prefix} = {cls_name}({', '.join(values)})"]
    return [f"{prefix} = new({cls_name})"] + [
        f"{prefix}_set{i}({prefix}, {v})" for i, v in enumerate(values)
    ]


def _record_lines(cls: type, layout: _Layout, source: str, prefix: str, fail: str) -> list[str]:
    """Lines that check list ``source`` (its length already checked) as a ``cls`` and
    leave the built instance in local ``prefix``; ``fail`` is the statement that raises."""
    values = [f"{prefix}{i}" for i in range(len(layout))]
    kinds = [kind for _, kind in layout]
    test = " and ".join(_test(kind, v) for kind, v in zip(kinds, values, strict=True))
    lines = [f"{', '.join(values)}, = {source}", f"if not ({test}):", f"    {fail}"]
    for kind, v in zip(kinds, values, strict=True):
        if kind == _ENTRY_KIND:
            lines.append(f"{v} = entry_kinds[{v}]")
        elif kind == _ENTRIES:
            entry = _record_lines(Entry, _ENTRY_LAYOUT, "item", "e", fail)
            lines += [
                "entries = []",
                "append = entries.append",
                f"for item in {v}:",
                f"    if type(item) is not list or len(item) != {len(_ENTRY_LAYOUT)}:",
                f"        {fail}",
                *(f"    {line}" for line in entry),
                "    append(e)",
                f"{v} = tuple(entries)",
            ]
    lines += _build_lines(cls.__name__, prefix, values, _slot_setters(cls) is not None)
    return lines


def _entries_expression(source: str) -> str:
    fields = ", ".join(f"e.{name}" for name, _ in _ENTRY_LAYOUT)
    return f"[[{fields}] for e in {source}]"


def _generate(cls: type) -> tuple[Callable[[Any], bytes], Callable[[list[Any]], Message], str]:
    """The encoder and decoder of one message type, and their source."""
    name = cls.__name__
    layout = _layout(cls)
    wire = [
        _entries_expression(f"m.{field}") if kind == _ENTRIES else f"m.{field}"
        for field, kind in layout
    ]
    fail = "raise invalid(cls, layout, p)"
    lines = [
        "def encode(m):",
        f"    return pack([{NOTIFICATION}, {name!r}, [{', '.join(wire)}]])",
        "",
        "def decode(p):",
        f"    if len(p) != {len(layout)}:",
        f"        {fail}",
        *(f"    {line}" for line in _record_lines(cls, layout, "p", "m", fail)),
    ]
    if cls in _MESSAGE_CHECKS:
        lines += [
            "    problem = check(m)",
            "    if problem is not None:",
            "        raise refuse(cls, problem)",
        ]
    lines.append("    return m")
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {
        "pack": msgpack.Packer(use_bin_type=True).pack,
        "cls": cls,
        name: cls,
        "Entry": Entry,
        "layout": layout,
        "new": object.__new__,
        "invalid": _invalid,
        "entry_kinds": _ENTRY_KINDS,
        "max_uint": MAX_UINT,
        "check": _MESSAGE_CHECKS.get(cls),
        "refuse": _refuse,
    }
    for prefix, built in (("m", cls), ("e", Entry)):
        for i, setter in enumerate(_slot_setters(built) or ()):
            namespace[f"{prefix}_set{i}"] = setter
    exec(compile(source, f"<raftsim.wire.codec {name}>", "exec"), namespace)
    return namespace["encode"], namespace["decode"], source


_ENCODERS: dict[type, Callable[[Any], bytes]] = {}
_DECODERS: dict[str, Callable[[list[Any]], Message]] = {}
#: The generated source of each type's encoder and decoder, for anyone debugging them.
GENERATED_SOURCE: dict[str, str] = {}
for _cls in MESSAGE_TYPES:
    _ENCODERS[_cls], _DECODERS[_cls.__name__], GENERATED_SOURCE[_cls.__name__] = _generate(_cls)
del _cls


# ---------------------------------------------------------------- the API


def encode_message(message: Message) -> bytes:
    """The bytes of one Raft message as a msgpack-rpc notification frame.

    Raises MessageError for anything that is not a Raft message or holds values msgpack
    cannot encode (an int over 64 bits, a str with a lone surrogate). Values of the wrong
    type that msgpack can encode (a negative term) are not checked here: the receiver's
    decode_message rejects them.
    """
    encode = _ENCODERS.get(type(message))
    if encode is None:
        raise MessageError(f"not a Raft message: {type(message).__name__}")
    try:
        return encode(message)
    except Exception as exc:
        raise MessageError(f"cannot encode {type(message).__name__}: {exc}") from exc


_pack = msgpack.Packer(use_bin_type=True).pack
#: ``[2, "AppendEntries", [`` up to its first param: a notification is an array of 3, its
#: params an array of the message's 8 fields
_APPEND_ENTRIES_HEAD: Final = (b"\x93" + _pack(NOTIFICATION) + _pack("AppendEntries")
                               + b"\x98")
assert len(_layout(AppendEntries)) == 8 and _layout(AppendEntries)[5][0] == "entries"


class RoundEncoder:
    """Encodes the messages of one round, as :func:`encode_message` does, byte for byte;
    AppendEntries that carry the same entries (a leader sends the same new entries to
    each follower) share one packing of them instead of packing each entry again per
    follower. Only for messages sent together: entries are recognised by identity."""

    __slots__ = ("_entries", "_packed")

    def __init__(self) -> None:
        self._entries: tuple[Entry, ...] = ()
        self._packed = b""

    def encode(self, message: Message) -> bytes:
        if type(message) is not AppendEntries or not message.entries:
            return encode_message(message)
        entries = message.entries
        last = self._entries
        try:
            # The same first and last entry objects and as many: the same run of a log.
            if not (last and len(last) == len(entries) and last[0] is entries[0]
                    and last[-1] is entries[-1]):
                self._entries = entries
                self._packed = _pack([[e.term, e.index, e.kind, e.data] for e in entries])
            return b"".join((_APPEND_ENTRIES_HEAD, _pack(message.term), _pack(message.source),
                             _pack(message.target), _pack(message.prev_log_index),
                             _pack(message.prev_log_term), self._packed,
                             _pack(message.leader_commit), _pack(message.context)))
        except Exception as exc:
            self._entries = ()
            raise MessageError(f"cannot encode AppendEntries: {exc}") from exc


def decode_message(frame: Notification) -> Message:
    """The Raft message a notification frame carries; MessageError if it carries none."""
    if type(frame) is not Notification:
        raise MessageError(f"Raft messages travel as notifications, got {type(frame).__name__}")
    method = frame.method
    decode = _DECODERS.get(method) if type(method) is str else None
    if decode is None:
        raise MessageError(f"unknown Raft message {describe_value(method)}")
    params = frame.params
    if type(params) is not list:
        raise MessageError(f"{method} params must be an array, got {describe_value(params)}")
    try:
        return decode(params)
    except WireError:
        raise
    except Exception as exc:  # a bug here, never a valid input: still a typed error
        raise MessageError(f"cannot decode {method}: {type(exc).__name__}: {exc}") from exc


def decode_message_bytes(data: bytes) -> Message:
    """The Raft message in one whole frame (FrameError or MessageError otherwise).

    Equivalent to ``decode_message(decode_frame(data))`` with a Request or Response
    rejected, minus the Notification object in between.
    """
    obj = unpack_whole(data)
    if type(obj) is list and len(obj) == 3:
        tag, method, params = obj
        if type(tag) is int and tag == NOTIFICATION and type(params) is list:
            decode = _DECODERS.get(method) if type(method) is str else None
            if decode is not None:
                try:
                    return decode(params)
                except WireError:
                    raise
                except Exception as exc:  # as in decode_message
                    raise MessageError(
                        f"cannot decode {method}: {type(exc).__name__}: {exc}"
                    ) from exc
    frame = frame_from_object(obj)  # FrameError if it is no frame at all
    if not isinstance(frame, Notification):
        raise MessageError(f"Raft messages travel as notifications, got {type(frame).__name__}")
    return decode_message(frame)  # MessageError: unknown method

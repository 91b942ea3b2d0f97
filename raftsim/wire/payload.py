"""What the opaque bytes inside Raft messages must be, checked before a server acts on them.

The core treats an entry's data and a snapshot's payload as bytes, but it decodes a
configuration the moment it appends one, a restarted server decodes every entry it holds,
and the state machine decodes every command it applies and every snapshot it restores.
Bytes that cannot be decoded there must never get that far: a forged AppendEntries with a
garbage configuration entry, appended and persisted, crashes the server at each restart.
So the wire refuses a message carrying any payload that is not exactly what a server
sends, and the receiving server treats it as the bad message it is.

What a server sends, and so all that is accepted:

- a CONFIGURATION entry: the core's encoding of a configuration (``Configuration.encode``,
  byte for byte: re-encoding what was decoded must give the same bytes) with at least one
  voter, no empty id, no id or address twice;
- a snapshot's configuration: ``encode_indexed`` (again byte for byte), created at or
  before the snapshot's own index;
- a COMMAND entry: one key-value command, ``["put", key, value, cas]`` (cas nil or a
  uint64), ``["delete", key]`` or ``["batch", [put or delete, ...]]``, as
  ``raftsim.runtime.kv`` encodes them (a leader proposes nothing else: ``check_command``);
- a snapshot's data: ``[applied index, [[key, value, modify index, create index], ...]]``,
  as ``KVStore.snapshot`` encodes it.

Each ``*_problem`` function returns what is wrong, or None; none raises on any input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import msgpack

from raftsim.core.configuration import Configuration, decode_indexed, encode_indexed

#: The largest term or index accepted (2**63 - 1): a signed 64-bit integer everywhere
#: (Go's hashicorp/raft, JSON consumers), and one below what msgpack can carry at all.
MAX_UINT: Final = 2**63 - 1


_unpackb: Final = msgpack.unpackb


def _uint(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_UINT


def _unpack(data: bytes | bytearray) -> tuple[Any, str | None]:
    """The one msgpack value ``data`` is (strs UTF-8, map keys str or bytes), or why not.
    msgpack bounds every length by ``len(data)`` and nesting by 1024."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0), None
    except Exception as exc:  # any of msgpack's errors, RecursionError included
        return None, f"not one msgpack value ({type(exc).__name__})"


# ---------------------------------------------------------------- configurations


def _json_problem(data: bytes) -> str | None:
    try:
        json.loads(data)
    except Exception as exc:  # JSONDecodeError, UnicodeDecodeError, RecursionError
        return f"not JSON ({type(exc).__name__})"
    return None


def _servers_problem(config: Configuration) -> str | None:
    ids: set[str] = set()
    addresses: set[str] = set()
    for server in config.servers:
        if not server.id:
            return "an empty server id"
        if server.id in ids:
            return f"server {server.id} is listed twice"
        if server.address in addresses:
            return f"address {server.address} is listed twice"
        ids.add(server.id)
        addresses.add(server.address)
    if not config.voters:
        return "no voter"
    return None


def configuration_problem(data: bytes) -> str | None:
    """What is wrong with ``data`` as a CONFIGURATION entry's data, or None."""
    problem = _json_problem(data)
    if problem is not None:
        return problem
    try:
        config = Configuration.decode(data)
        canonical = config.encode() == data
    except Exception as exc:  # a shape decode() cannot take
        return f"not a configuration ({type(exc).__name__})"
    if not canonical:
        return "not the canonical encoding of a configuration"
    return _servers_problem(config)


def snapshot_configuration_problem(data: bytes, snapshot_index: int) -> str | None:
    """What is wrong with ``data`` as the configuration of a snapshot taken at
    ``snapshot_index``, or None."""
    problem = _json_problem(data)
    if problem is not None:
        return problem
    try:
        index, config = decode_indexed(data)
        canonical = encode_indexed(index, config) == data
    except Exception as exc:  # a shape decode_indexed() cannot take
        return f"not an indexed configuration ({type(exc).__name__})"
    if not canonical:
        return "not the canonical encoding of an indexed configuration"
    if not 0 <= index <= snapshot_index:
        return f"its index {index} is past the snapshot's index {snapshot_index}"
    return _servers_problem(config)


# ---------------------------------------------------------------- commands


def _put_problem(op: list[Any]) -> str | None:
    cas = op[3] if len(op) == 4 else None
    if (len(op) == 4 and type(op[1]) is str and type(op[2]) is bytes
            and (cas is None or (type(cas) is int and 0 <= cas < 2**64))):
        return None  # a cas is Nomad's uint64, compared with modify indexes, never stored
    return "put is [\"put\", key (str), value (bin), cas (nil or a uint64)]"


def _delete_problem(op: list[Any]) -> str | None:
    if len(op) == 2 and type(op[1]) is str:
        return None
    return "delete is [\"delete\", key (str)]"


_SINGLE: Final[dict[str, Callable[[list[Any]], str | None]]] = {
    "put": _put_problem,
    "delete": _delete_problem,
}


def _single_problem(op: object) -> str | None:
    if type(op) is not list or not op:
        return "a command is an array [name, ...]"
    check = _SINGLE.get(op[0]) if type(op[0]) is str else None
    if check is None:
        return "unknown command (a command is put, delete or a batch of these)"
    return check(op)


def command_problem(data: bytes, *, batch: bool = True) -> str | None:
    """What is wrong with ``data`` as a COMMAND entry's data, or None. ``batch=False``:
    a batch is wrong too (a command about to be put into one: batches do not nest).

    Every follower runs this on every entry it receives, so an unconditional put (what
    most entries are) is checked inline; everything else takes the general path."""
    try:
        op = _unpackb(data)  # msgpack's defaults: UTF-8 strs, str keys, lengths <= len(data)
    except Exception as exc:  # any of msgpack's errors, RecursionError included
        return f"not one msgpack value ({type(exc).__name__})"
    if (type(op) is list and len(op) == 4 and op[0] == "put" and op[3] is None
            and type(op[1]) is str and type(op[2]) is bytes):
        return None
    return _op_problem(op, batch)


def decode_command(data: bytes, *, batch: bool = True) -> tuple[Any, str | None]:
    """``data`` decoded, and what ``command_problem`` says of it (the same checks): a
    leader validates a command once and applies what it decoded, instead of decoding
    it again."""
    try:
        op = _unpackb(data)
    except Exception as exc:  # any of msgpack's errors, RecursionError included
        return None, f"not one msgpack value ({type(exc).__name__})"
    if (type(op) is list and len(op) == 4 and op[0] == "put" and op[3] is None
            and type(op[1]) is str and type(op[2]) is bytes):
        return op, None
    return op, _op_problem(op, batch)


def _op_problem(op: Any, batch: bool) -> str | None:
    """``command_problem`` past its inline fast path: a decoded command, or None."""
    if type(op) is list and len(op) >= 1 and op[0] == "batch":
        if not batch:
            return "a batch cannot go into another batch"
        if len(op) != 2 or type(op[1]) is not list:
            return "batch is [\"batch\", [command, ...]]"
        for position, sub in enumerate(op[1]):
            problem = _single_problem(sub)
            if problem is not None:
                return f"batch[{position}]: {problem}"
        return None
    return _single_problem(op)


# ---------------------------------------------------------------- snapshot payloads


def snapshot_data_problem(data: bytes | bytearray) -> str | None:
    """What is wrong with ``data`` as a snapshot of the key-value store, or None."""
    snapshot, problem = _unpack(data)
    if problem is not None:
        return problem
    if not (type(snapshot) is list and len(snapshot) == 2 and _uint(snapshot[0])
            and type(snapshot[1]) is list):
        return "a snapshot is [applied index, items]"
    for position, item in enumerate(snapshot[1]):
        if not (type(item) is list and len(item) == 4 and type(item[0]) is str
                and type(item[1]) is bytes and _uint(item[2]) and _uint(item[3])):
            return f"items[{position}] is not [key (str), value (bin), modify index, create index]"
    return None

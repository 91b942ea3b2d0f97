"""The replicated state machine: a small key-value store with compare-and-set.

Commands are msgpack arrays so the log holds the same bytes in both worlds:
``["put", key, value, cas]`` (cas None: unconditional; 0: only if absent; n: only if the
key's modify index is n), ``["delete", key]``, and ``["batch", [command, ...]]`` (a live
server's group commit: several clients' commands in one entry, applied in order, all at
the entry's index). Applying is deterministic: the result depends only on the entries
applied before it.
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import msgpack

from raftsim.wire.payload import command_problem, decode_command

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 512 * 1024


class CommandError(ValueError):
    """A command that is not one this store applies; a leader refuses to propose it."""


class KVItem(NamedTuple):
    """One key's value and the indexes of the entries that last modified and created it
    (immutable; a tuple because applying builds one per write)."""

    value: bytes
    modify_index: int
    create_index: int


_new_item = tuple.__new__


#: one Packer for every command (``msgpack.packb`` builds a new one per call: 5x slower)
_pack = msgpack.Packer(use_bin_type=True).pack


def encode_put(key: str, value: bytes, cas: int | None = None) -> bytes:
    return _pack(["put", key, value, cas])


def encode_delete(key: str) -> bytes:
    return _pack(["delete", key])


_BATCH_TAG = msgpack.packb("batch")


def check_command(command: bytes, *, batch: bool = True) -> None:
    """Raise CommandError unless ``command`` is one command this store applies: the
    followers' wire refuses an AppendEntries carrying anything else (``wire.payload``),
    so a leader proposing it would wedge replication. ``batch=False`` also refuses a
    batch: what group commit may put into one (batches do not nest)."""
    problem = command_problem(command, batch=batch)
    if problem is not None:
        raise CommandError(f"not a key-value command: {problem}")


def checked_command(command: bytes) -> list[Any]:
    """``check_command(command, batch=False)``, returning ``command`` decoded: group
    commit validates each command once, at submit, and the leader applies what was
    decoded then (``KVStore.apply_ops``) instead of decoding the entry again."""
    op, problem = decode_command(command, batch=False)
    if problem is not None:
        raise CommandError(f"not a key-value command: {problem}")
    return op  # type: ignore[no-any-return]


def encode_batch(commands: Sequence[bytes]) -> bytes:
    """Several encoded commands as one: ``["batch", [command, ...]]`` (group commit puts
    the commands of one event-loop turn in one log entry). Each command is embedded as
    the msgpack value it already is, so the whole entry decodes in one call; each must
    pass ``check_command``."""
    count = len(commands)
    if count < 16:
        header = bytes((0x90 | count,))
    elif count < 1 << 16:
        header = b"\xdc" + count.to_bytes(2, "big")
    else:
        header = b"\xdd" + count.to_bytes(4, "big")
    return b"".join((b"\x92", _BATCH_TAG, header, *commands))


class KVStore:
    def __init__(self) -> None:
        self.items: dict[str, KVItem] = {}
        self.applied_index = 0

    def apply(self, index: int, command: bytes) -> bool:
        """Apply one committed command; returns whether it took effect (for a batch:
        whether all of its commands did). A follower applies every entry through here,
        one per command where the leader proposes one entry per command, so a single
        command does not go through a batch's list of results."""
        self.applied_index = index
        op = _decode(command)
        if op is None:
            return False
        if op[0] == "batch" and len(op) == 2 and type(op[1]) is list:
            return all(self.apply_ops(index, op[1]))
        return self.apply_op(index, op)

    def apply_op(self, index: int, op: Any) -> bool:
        """Apply one decoded command (``checked_command``'s, not a batch) at ``index``;
        returns whether it took effect. The same as ``apply_ops(index, [op])[0]``."""
        self.applied_index = index
        if type(op) is list and len(op) == 4 and op[0] == "put" and op[3] is None:
            key, value = op[1], op[2]
            if type(key) is str and type(value) is bytes:
                items = self.items
                current = items.get(key)
                items[key] = _new_item(KVItem, (
                    value, index, index if current is None else current.create_index))
                return True
        return self._apply_op(index, op)

    def apply_batch(self, index: int, command: bytes) -> list[bool]:
        """Apply a committed command; returns each result: one per command of a batch
        (see ``encode_batch``), else one."""
        self.applied_index = index
        op = _decode(command)
        if op is None:
            return [False]
        if op[0] != "batch" or len(op) != 2 or type(op[1]) is not list:
            return [self._apply_op(index, op)]
        return self.apply_ops(index, op[1])

    def apply_ops(self, index: int, ops: list[Any]) -> list[bool]:
        """Apply decoded commands (``checked_command``'s, or a batch's) in order, all at
        ``index``; returns each result."""
        self.applied_index = index
        # The fast path, inline: an unconditional put (what group commit mostly carries).
        items = self.items
        get = items.get
        results: list[bool] = []
        append = results.append
        for sub in ops:
            if type(sub) is list and len(sub) == 4 and sub[0] == "put" and sub[3] is None:
                key, value = sub[1], sub[2]
                if type(key) is str and type(value) is bytes:
                    current = get(key)
                    items[key] = _new_item(KVItem, (
                        value, index, index if current is None else current.create_index))
                    append(True)
                    continue
            append(self._apply_op(index, sub))
        return results

    def _apply_op(self, index: int, op: object) -> bool:
        if type(op) is not list or not op:
            return False
        kind = op[0]
        if kind == "put" and len(op) == 4:
            _, key, value, cas = op
            if type(key) is not str or type(value) is not bytes:
                return False
            items = self.items
            current = items.get(key)
            if cas is not None:
                if cas == 0 and current is not None:
                    return False
                if cas != 0 and (current is None or current.modify_index != cas):
                    return False
            items[key] = KVItem(value, index,
                                index if current is None else current.create_index)
            return True
        if kind == "delete" and len(op) == 2 and type(op[1]) is str:
            self.items.pop(op[1], None)
            return True
        return False

    def advance(self, index: int) -> None:
        """Entries that are not commands (no-ops, configurations) still move the index."""
        self.applied_index = index

    def get(self, key: str) -> KVItem | None:
        return self.items.get(key)

    def snapshot(self) -> bytes:
        """``[applied_index, [[key, value, modify_index, create_index], ...]]`` sorted by
        key, made here and now (the simulator's way: it costs no virtual time). A live
        server makes it with ``encode_snapshot`` in a worker thread instead."""
        return encode_snapshot(self.applied_index, self.items)

    def restore(self, data: bytes | bytearray) -> None:
        self.applied_index, self.items = decode_snapshot(data)

    def digest(self) -> dict[str, bytes]:
        return {k: v.value for k, v in sorted(self.items.items())}


def _sorted_keys(items: dict[str, KVItem]) -> Iterator[str]:
    """The keys in order without one long sort: sorting a million keys is one C call
    that holds the GIL for most of a second, so large key sets are sorted in runs and
    merged (heapq.merge is Python code, which lets other threads run in between)."""
    keys = list(items)
    if len(keys) <= _SORT_RUN:
        return iter(sorted(keys))
    runs = [sorted(keys[start:start + _SORT_RUN]) for start in range(0, len(keys), _SORT_RUN)]
    return heapq.merge(*runs)


#: keys sorted by one sorted() call at most (see _sorted_keys)
_SORT_RUN = 16_384


def encode_snapshot(applied_index: int, items: dict[str, KVItem]) -> bytes:
    """The snapshot of ``items``, packed one key at a time and joined.

    Made to run in a worker thread from a shallow copy of the items (they are immutable
    tuples) while the event loop goes on: msgpack's C packer holds the GIL for a whole
    ``pack`` call, so packing the whole state in one call would stop the loop for as long
    as that takes; packing per key lets the loop run between keys. The bytes are the
    same as one ``packb`` of the whole list.
    """
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    pieces = [packer.pack_array_header(2), pack(applied_index),
              packer.pack_array_header(len(items))]
    append = pieces.append
    for key in _sorted_keys(items):
        item = items[key]
        append(pack([key, item.value, item.modify_index, item.create_index]))
    return b"".join(pieces)


def decode_snapshot(data: bytes | bytearray) -> tuple[int, dict[str, KVItem]]:
    """(applied index, items) from a snapshot, unpacked one key at a time (for a worker
    thread, as ``encode_snapshot``); ValueError if ``data`` is no KV snapshot."""
    if not data:
        return 0, {}
    # BytesIO shares a bytes object's memory, but copies any other buffer whole (an
    # installed snapshot is a bytearray): that copy would hold the GIL.
    source = io.BytesIO(data) if type(data) is bytes else _BufferReader(data)
    unpacker = msgpack.Unpacker(source, raw=False, read_size=_READ_SIZE,
                                max_buffer_size=max(len(data), _READ_SIZE))
    try:
        if unpacker.read_array_header() != 2:
            raise ValueError("a KV snapshot is [applied index, items]")
        applied = unpacker.unpack()
        count = unpacker.read_array_header()
        items: dict[str, KVItem] = {}
        for _ in range(count):
            key, value, modify, create = unpacker.unpack()
            items[key] = _new_item(KVItem, (bytes(value), modify, create))
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise ValueError(f"not a KV snapshot: {exc}") from exc
    if type(applied) is not int:
        raise ValueError("not a KV snapshot: the applied index is not an int")
    return applied, items


#: decode_snapshot reads the snapshot this much at a time
_READ_SIZE = 1 << 20


class _BufferReader:
    """A file over any bytes-like object, read without copying it whole."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        start = self._position
        end = len(self._view) if size < 0 else min(start + size, len(self._view))
        self._position = end
        return self._view[start:end].tobytes()


def _decode(command: bytes) -> list[Any] | None:
    try:
        op = msgpack.unpackb(command, raw=False)
    except Exception:
        return None
    return op if isinstance(op, list) and op else None

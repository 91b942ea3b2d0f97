"""The replicated state machine: a small key-value store with compare-and-set.

Commands are msgpack arrays so the log holds the same bytes in both worlds:
``["put", key, value, cas]`` (cas None: unconditional; 0: only if absent; n: only if the
key's modify index is n) and ``["delete", key]``. Applying is deterministic: the result
depends only on the entries applied before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 512 * 1024


class CommandError(ValueError):
    """A command that does not decode: it is applied as a no-op with this error."""


@dataclass(frozen=True, slots=True)
class KVItem:
    value: bytes
    modify_index: int
    create_index: int


def encode_put(key: str, value: bytes, cas: int | None = None) -> bytes:
    return msgpack.packb(["put", key, value, cas], use_bin_type=True)


def encode_delete(key: str) -> bytes:
    return msgpack.packb(["delete", key], use_bin_type=True)


class KVStore:
    def __init__(self) -> None:
        self.items: dict[str, KVItem] = {}
        self.applied_index = 0

    def apply(self, index: int, command: bytes) -> bool:
        """Apply one committed command; returns whether it took effect."""
        self.applied_index = index
        try:
            op = msgpack.unpackb(command, raw=False)
        except Exception:
            return False
        if not isinstance(op, list) or not op:
            return False
        if op[0] == "put" and len(op) == 4 and isinstance(op[1], str):
            key, value, cas = op[1], op[2], op[3]
            current = self.items.get(key)
            if cas is not None:
                if cas == 0 and current is not None:
                    return False
                if cas != 0 and (current is None or current.modify_index != cas):
                    return False
            created = current.create_index if current is not None else index
            self.items[key] = KVItem(bytes(value), index, created)
            return True
        if op[0] == "delete" and len(op) == 2 and isinstance(op[1], str):
            self.items.pop(op[1], None)
            return True
        return False

    def advance(self, index: int) -> None:
        """Entries that are not commands (no-ops, configurations) still move the index."""
        self.applied_index = index

    def get(self, key: str) -> KVItem | None:
        return self.items.get(key)

    def snapshot(self) -> bytes:
        return msgpack.packb(
            [self.applied_index,
             [[k, v.value, v.modify_index, v.create_index] for k, v in sorted(self.items.items())]],
            use_bin_type=True,
        )

    def restore(self, data: bytes) -> None:
        applied, items = msgpack.unpackb(data, raw=False) if data else (0, [])
        self.applied_index = applied
        self.items = {k: KVItem(bytes(v), m, c) for k, v, m, c in items}

    def digest(self) -> dict[str, bytes]:
        return {k: v.value for k, v in sorted(self.items.items())}

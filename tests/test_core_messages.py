"""Raft's messages: immutable values built fast, with dataclass semantics intact."""

from __future__ import annotations

import dataclasses

import pytest

from raftsim.core.messages import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
)


def test_messages_are_built_with_defaults_and_keywords_and_compare_by_value() -> None:
    entry = Entry(3, 7)
    assert (entry.term, entry.index, entry.kind, entry.data) == (3, 7, EntryKind.COMMAND, b"")
    assert entry == Entry(index=7, term=3, kind=EntryKind.COMMAND, data=b"")
    assert hash(entry) == hash(Entry(3, 7))
    answer = AppendEntriesResponse(2, "s2", "s1", True, 9, context=4)
    assert (answer.conflict_term, answer.conflict_index, answer.context) == (0, 0, 4)
    assert HardState() == HardState(0, None, 0)
    assert "data" not in repr(Snapshot(1, 1, b"", b"secret"))


@pytest.mark.parametrize("cls", [Entry, *MESSAGE_TYPES, HardState, Snapshot],
                         ids=lambda cls: cls.__name__)
def test_every_message_stays_frozen_and_rejects_missing_or_unknown_fields(cls: type) -> None:
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING]
    values = {f.name: (1 if f.type == "int" else f.default if f.default is not
                       dataclasses.MISSING else "x") for f in fields}
    message = cls(**values)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(message, fields[0].name, 2)
    if required:
        with pytest.raises(TypeError):
            cls()
    with pytest.raises(TypeError):
        cls(**values, unknown=1)


def test_a_heartbeat_is_an_append_with_no_entries() -> None:
    heartbeat = AppendEntries(1, "s1", "s2", 0, 0, (), 0)
    assert heartbeat.entries == () and heartbeat.context == 0

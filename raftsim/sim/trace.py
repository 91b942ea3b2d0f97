"""The trace: one record per event, the single stream everything else reads.

A record is a flat dict ``{"t": virtual seconds, "server": id, "term": n, "kind": ...,
...fields}``. Narration, the HTML diagram, golden digests and the invariant checker all
read this stream, so its field names are a public format (docs/scenarios.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raftsim.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)

Record = dict[str, Any]


def message_fields(message: object) -> dict[str, Any]:
    """The few fields of a Raft message a reader of the trace needs."""
    if isinstance(message, AppendEntries):
        return {"msg": "AppendEntries", "term": message.term, "prev": message.prev_log_index,
                "n": len(message.entries), "commit": message.leader_commit}
    if isinstance(message, AppendEntriesResponse):
        return {"msg": "AppendEntriesResponse", "term": message.term, "ok": message.success,
                "match": message.match_index}
    if isinstance(message, RequestVote):
        return {"msg": "RequestVote", "term": message.term, "pre": message.pre_vote,
                "last_index": message.last_log_index, "last_term": message.last_log_term}
    if isinstance(message, RequestVoteResponse):
        return {"msg": "RequestVoteResponse", "term": message.term,
                "granted": message.granted, "pre": message.pre_vote}
    if isinstance(message, InstallSnapshot):
        return {"msg": "InstallSnapshot", "term": message.term,
                "index": message.last_included_index}
    if isinstance(message, InstallSnapshotResponse):
        return {"msg": "InstallSnapshotResponse", "term": message.term,
                "match": message.match_index}
    if isinstance(message, TimeoutNow):
        return {"msg": "TimeoutNow", "term": message.term}
    return {"msg": "rpc"}


class TraceRecorder:
    """Collects records in memory; listeners see each record as it is made."""

    def __init__(self, clock: Callable[[], float], *, messages: bool = True) -> None:
        self._clock = clock
        self.records: list[Record] = []
        #: record message send/deliver/drop events (the bulk of a trace)
        self.messages = messages
        self.listeners: list[Callable[[Record], None]] = []

    def record(self, server: str | None, term: int, kind: str, fields: dict[str, Any]) -> None:
        rec: Record = {"t": round(self._clock(), 6), "server": server, "term": term,
                       "kind": kind}
        rec.update(fields)
        self.records.append(rec)
        for listener in self.listeners:
            listener(rec)

    # network observer hooks -------------------------------------------------------
    def on_send(self, serial: int, source: str, target: str, meta: object) -> None:
        if self.messages:
            fields = message_fields(meta)
            term = fields.pop("term", 0)
            self.record(source, term, "send", {"id": serial, "to": target, **fields})

    def on_deliver(self, serial: int, source: str, target: str, meta: object) -> None:
        if self.messages:
            self.record(target, 0, "deliver", {"id": serial, "from": source,
                                                "msg": message_fields(meta)["msg"]})

    def on_drop(self, serial: int, source: str, target: str, meta: object, reason: str) -> None:
        if self.messages:
            self.record(source, 0, "drop", {"id": serial, "to": target, "reason": reason,
                                             "msg": message_fields(meta)["msg"]})

    # output -------------------------------------------------------------------------
    def lines(self) -> Iterable[str]:
        for rec in self.records:
            yield json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str)

    def digest(self) -> str:
        h = hashlib.sha256()
        for line in self.lines():
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def write_jsonl(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for line in self.lines():
                f.write(line + "\n")


def read_jsonl(path: Path) -> list[Record]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

"""Plain-words narration of a trace: what a newcomer reads to follow a run.

Each trace record becomes at most one sentence. Message traffic is left out (it is what
the HTML diagram is for); elections, votes, commits, membership, faults and API calls
are told. The same sentences feed `raftsim run`, `make run` and the web UI's event feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Line:
    t: float
    server: str | None
    term: int
    text: str
    kind: str


def _role_sentence(rec: Record) -> str:
    role, term, leader = rec.get("role"), int(rec.get("term") or 0), rec.get("leader")
    if role == "leader":
        return f"became LEADER of term {term}"
    if role == "candidate":
        return f"became a candidate for term {term} and asks everyone for votes"
    if role == "pre-candidate":
        return (f"became a pre-candidate: asks whether it could win term {term + 1} "
                "before disturbing anyone")
    if leader:
        return f"now follows {leader} in term {term}"
    return f"is a follower in term {term}, with no leader known"


def _fault_sentence(rec: Record) -> str:
    fault = rec.get("fault")
    target = rec.get("target")
    if fault == "crash":
        return f"{target} crashed: it loses everything in memory, its disk survives"
    if fault == "restart":
        return f"{target} restarted from what it had on disk"
    if fault == "pause":
        return (f"{target} froze (SIGSTOP): no messages, no HTTP answers, no timers, no "
                "sends until resumed; what arrives for it waits in its sockets")
    if fault == "resume":
        return (f"{target} resumed (SIGCONT): it handles what waited in its sockets, then "
                "the timers that fell due while it was frozen")
    if fault == "partition":
        groups = " | ".join(",".join(g) for g in rec.get("groups", []))
        return f"network partitioned into groups {groups}"
    if fault == "cut":
        return f"messages from {rec.get('source')} to {rec.get('target')} are now lost " \
               "(one-way cut)"
    if fault == "isolate":
        return f"{target} is cut off from everyone"
    if fault == "heal":
        return "the network healed: every server can reach every other"
    if fault in _DISK_FAULTS:
        return _DISK_FAULTS[fault].format(target=target, **{
            k: v for k, v in rec.items() if k not in ("target", "t", "kind")})
    details = ", ".join(f"{k}={v}" for k, v in rec.items()
                        if k not in ("t", "server", "term", "kind", "fault"))
    return f"network change: {fault} {details}".rstrip()


#: disk faults (docs/scenarios.md, "Disk faults")
_DISK_FAULTS = {
    "disk-fault": "{target}'s disk will fail its next save ({operation})",
    "disk-corrupt": "{target}'s log record {index} went bad on disk (latent: it is "
                    "noticed only when {target} restarts)",
    "slow-disk": "{target}'s disk now takes {seconds}s a save; what it does after each "
                 "save waits for it",
}

_SIMPLE = {
    "election-timeout": "heard from no leader for an election timeout and starts an election",
    "timeout-now": "was told by {source} to start an election now (leadership transfer)",
    "transfer-start": "starts handing leadership to {target}: catches it up, then TimeoutNow",
    "transfer-aborted": "gave up handing leadership to {target}",
    "step-down": "stepped down: {reason}",
    "snapshot": "compacted its log into a snapshot up to index {index}",
    "send-snapshot": "sends its snapshot (up to index {index}) to {peer}, which is too far "
                     "behind for log entries",
    "snapshot-installed": "installed a snapshot up to index {index} from {source}",
    "truncate": "removed conflicting entries from index {index} on",
    "config": "appended a configuration at index {index}: voters {voters_text}",
    "config-committed": "now knows the configuration at index {index} is committed "
                        "(voters {voters_text})",
    "crash": "",
    "start": "started with log up to index {last_index}, commit index {commit}",
    "storage-failure": "could not save ({operation} {file}: {error}) and stopped at once "
                       "(fail-stop) until it is restarted",
    "refused-start": "refused to start: {error}",
    "pause": "",
    "resume": "",
}


def narrate_record(rec: Record, leaders: dict[str, bool] | None = None) -> str | None:
    """One sentence for a record, or None for records not worth telling."""
    kind = rec.get("kind")
    if kind == "role":
        return _role_sentence(rec)
    if kind == "vote":
        who = rec.get("candidate")
        if rec.get("pre_vote"):
            return (f"would vote for {who} (pre-vote)" if rec.get("granted")
                    else f"would not vote for {who} (pre-vote)")
        return (f"voted for {who} in term {rec.get('term')}" if rec.get("granted")
                else f"refused its vote to {who} in term {rec.get('term')}")
    if kind == "vote-ignored":
        return (f"ignored {rec.get('candidate')}'s vote request: it heard from a leader "
                "recently")
    if kind == "commit":
        if leaders is not None and not leaders.get(str(rec.get("server"))):
            return None
        return f"committed everything up to index {rec.get('index')}"
    if kind == "fault":
        return _fault_sentence(rec)
    if kind == "say":
        return str(rec.get("text", ""))
    if kind == "api":
        status = rec.get("status")
        body = rec.get("body", "")
        tail = f": {body}" if body else ""
        return f"API {rec.get('method')} {rec.get('path')} -> {status}{tail}"
    if kind == "client":
        return str(rec.get("text", ""))
    if kind == "expect":
        verdict = "held" if rec.get("ok") else "FAILED"
        return f"expectation {verdict}: {rec.get('text', '')}"
    template = _SIMPLE.get(str(kind))
    if not template:
        return None
    fields = dict(rec)
    fields["voters_text"] = ",".join(rec.get("voters", []))
    try:
        return template.format(**fields)
    except (KeyError, IndexError):
        return template


class Narrator:
    """Narrates a trace one record at a time, as the records are made. It follows who
    leads, because some records (a leader's commit) are only told of a leader."""

    def __init__(self) -> None:
        self.leaders: dict[str, bool] = {}

    def line(self, rec: Record) -> Line | None:
        """The line ``rec`` tells, or None when it tells nothing."""
        kind = rec.get("kind")
        if kind == "role":
            self.leaders[str(rec.get("server"))] = rec.get("role") == "leader"
        elif kind == "crash":
            self.leaders[str(rec.get("server"))] = False
        text = narrate_record(rec, self.leaders)
        if not text:
            return None
        return Line(float(rec.get("t", 0.0)), rec.get("server"), int(rec.get("term", 0)),
                    text, str(kind))


def narrate(records: Iterable[Record]) -> Iterator[Line]:
    """The narration of a whole trace, in order."""
    narrator = Narrator()
    for rec in records:
        line = narrator.line(rec)
        if line is not None:
            yield line


def format_line(line: Line) -> str:
    who = line.server or "--"
    return f"{line.t:9.3f}s  {who:>4}  {line.text}"

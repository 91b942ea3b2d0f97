"""Plain-words narration of a trace: what a newcomer reads to follow a run.

Each trace record becomes at most one sentence. Message traffic is left out (it is what
the HTML diagram is for); elections, votes, appends, commits, membership, faults and API
calls are told. The same sentences feed `raftsim run`, `make run`, the HTML timeline and
the web UI's event feed.

:func:`narrate_record` tells one record on its own. :class:`Narrator` tells a run, and
knows what came before: it explains index 1 and index 2 the first time they appear,
sums a pre-vote round up in one line ("2 of 5 would vote for s3 (3 needed)") instead of
a line per answer, does not tell a duplicated message twice, and explains what a
restarted server knows of its commit index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from raftsim.viz.markdown import plain_text

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
        return _answer(str(rec.get("text", "")))
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


INDEX_1 = ("Index 1 is the starting configuration (the list of servers), which every "
           "server begins with, already committed")
INDEX_2 = ("Index 2 is the new leader's no-op: an empty entry of its own term, which it "
           "commits first, and with it everything before it")


def _span(first: int, last: int) -> str:
    return f"index {last}" if first == last else f"indexes {first} to {last}"


def _terms(terms: list[Any]) -> str:
    distinct = list(dict.fromkeys(terms))
    return ("term " if len(distinct) == 1 else "terms ") + ", ".join(map(str, distinct))


@dataclass(slots=True)
class _PreVoteRound:
    """The answers a pre-candidate got so far: voters who would vote for it, and every
    voter that answered (refusals and 'heard from a leader recently' included)."""

    term: int
    granted: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)


#: a client's answer longer than this is shortened in the narration (never in the trace)
LONG_ANSWER = 400
#: how much of a long answer the narration shows
ANSWER_SHOWN = 300


def _answer(text: str) -> str:
    """What an answer said; a long one (an agent's whole self description) is shortened
    to keep the story readable, saying that the trace has it whole."""
    if len(text) <= LONG_ANSWER:
        return text
    rest = len(text) - ANSWER_SHOWN
    return f"{text[:ANSWER_SHOWN]}... ({rest} more characters; the trace has the whole answer)"


class Narrator:
    """Narrates a trace one record at a time, as the records are made. It follows who
    leads (a leader's commit is told, a follower's is not), whom each server follows,
    which servers started before, the voters, and each open pre-vote round."""

    def __init__(self) -> None:
        self.leaders: dict[str, bool] = {}
        self.following: dict[str, str] = {}
        self.roles: dict[str, str] = {}
        self.started: set[str] = set()
        self.voters: set[str] = set()
        self._configured = False
        self._explained: set[int] = set()
        self._rounds: dict[str, _PreVoteRound] = {}
        self._votes_told: set[tuple[Any, ...]] = set()
        #: who a line is about when that is not the record's server (a pre-vote summary)
        self._speaker: str | None = None

    def line(self, rec: Record) -> Line | None:
        """The line ``rec`` tells, or None when it tells nothing."""
        kind = rec.get("kind")
        server = str(rec.get("server"))
        if kind == "role":
            self.leaders[server] = rec.get("role") == "leader"
            self.roles[server] = str(rec.get("role"))
            if rec.get("leader"):
                self.following[server] = str(rec.get("leader"))
            else:
                self.following.pop(server, None)
        elif kind == "crash":
            self.leaders[server] = False
            self.following.pop(server, None)
        elif kind in ("config", "config-committed"):
            self.voters = set(rec.get("voters", []))
            self._configured = True
        self._speaker = None
        text = self._text(rec, str(kind), server)
        if not text:
            return None
        return Line(float(rec.get("t", 0.0)), self._speaker or rec.get("server"),
                    int(rec.get("term", 0)), text, str(kind))

    def _text(self, rec: Record, kind: str, server: str) -> str | None:
        if kind == "start":
            return self._start(rec, server)
        if kind == "append":
            return self._append(rec, server)
        if kind in ("vote", "vote-ignored"):
            return self._vote(rec, kind, server)
        text = narrate_record(rec, self.leaders)
        pending = self._rounds.get(server)
        if pending is not None and (
                kind == "election-timeout" or kind == "crash"
                or (kind == "role" and rec.get("role") != "pre-candidate")):
            del self._rounds[server]
            if kind == "role" and rec.get("role") == "candidate":
                return (f"{len(pending.granted) + 1} of {self._voter_count()} would vote "
                        f"for {server}: {text}")
            summary = self._failed(server, pending)
            if kind == "role" and text:
                count = self._voter_count()
                return (f"{len(pending.granted) + 1} of {count} would vote for it "
                        f"({count // 2 + 1} needed); now it {text}")
            if text:
                return f"{summary}. It {text}"
            return summary
        if kind == "role" and rec.get("role") == "pre-candidate":
            self._rounds[server] = _PreVoteRound(int(rec.get("term") or 0))
        return text

    def _voter_count(self) -> int:
        return len(self.voters) if self.voters else len(self.started)

    def _failed(self, candidate: str, pending: _PreVoteRound) -> str:
        count = self._voter_count()
        return (f"{len(pending.granted) + 1} of {count} would vote for {candidate} "
                f"({count // 2 + 1} needed): {candidate} stays a follower of term "
                f"{pending.term}, and nobody is disturbed")

    def _start(self, rec: Record, server: str) -> str | None:
        last, commit = rec.get("last_index"), rec.get("commit")
        if server in self.started:
            known = (f"; whether entries {int(commit or 0) + 1} to {last} are, it learns "
                     "from the leader" if isinstance(last, int) and isinstance(commit, int)
                     and last > commit else "")
            return (f"restarted from its disk with log up to index {last}, commit index "
                    f"{commit}: the commit index is saved with the term and the vote, so it "
                    f"knows everything up to {commit} is committed{known}")
        self.started.add(server)
        if not self._configured:
            self.voters.add(server)
        text = f"started with log up to index {last}, commit index {commit}"
        if isinstance(last, int) and last >= 1 and 1 not in self._explained:
            self._explained.add(1)
            text += f". {INDEX_1}"
        return text

    def _append(self, rec: Record, server: str) -> str | None:
        first, last = rec.get("from"), rec.get("to")
        if not isinstance(first, int) or not isinstance(last, int) or last < first:
            return None
        terms = _terms(list(rec.get("terms") or [rec.get("term")]))
        # a new leader appends its no-op just before its role record says it leads
        if self.leaders.get(server) or self.roles.get(server) == "candidate":
            text = f"appended {_span(first, last)} ({terms}) to its log"
        elif server in self.following:
            text = f"stored {_span(first, last)} ({terms}) from {self.following[server]}"
        else:
            text = f"stored {_span(first, last)} ({terms}) in its log"
        if first <= 2 <= last and 2 not in self._explained:
            self._explained.add(2)
            text += f". {INDEX_2}"
        return text

    def _vote(self, rec: Record, kind: str, server: str) -> str | None:
        candidate = str(rec.get("candidate"))
        if rec.get("pre_vote"):
            pending = self._rounds.get(candidate)
            if pending is None or server in pending.answered:
                return None  # after the round was decided, or a duplicated message
            pending.answered.add(server)
            if kind == "vote" and rec.get("granted"):
                pending.granted.add(server)
            everyone = self._voter_count() - 1
            if len(pending.answered) >= everyone and (
                    len(pending.granted) + 1 <= self._voter_count() // 2):
                del self._rounds[candidate]
                self._speaker = candidate  # the line is about the candidate
                return self._failed(candidate, pending)
            return None
        key = (server, kind, candidate, rec.get("term"), rec.get("granted"))
        if key in self._votes_told:
            return None  # the same request delivered twice
        self._votes_told.add(key)
        return narrate_record(rec, self.leaders)


def narrate(records: Iterable[Record]) -> Iterator[Line]:
    """The narration of a whole trace, in order."""
    narrator = Narrator()
    for rec in records:
        line = narrator.line(rec)
        if line is not None:
            yield line


_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def terminal_text(line: Line) -> str:
    """The line's text for a terminal: a scenario's ``say`` is Markdown, shown without
    its markup (a link keeps its address in parentheses); other lines are plain."""
    if line.kind != "say":
        return line.text
    return plain_text(_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", line.text))


def format_line(line: Line) -> str:
    who = line.server or "--"
    return f"{line.t:9.3f}s  {who:>4}  {terminal_text(line)}"

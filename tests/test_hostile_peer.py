"""A hostile peer on the RPC port of live servers (real processes, real TCP on loopback,
plain RPC as ``--insecure-rpc`` gives it): what it sends is refused and changes nothing.

The attacker opens a socket to a server's RPC port and says hello as ``absent``, a member
of the cluster whose process is down (so the attack does not also fight a live link).
Without TLS the hello is not authenticated: any bytes on the network can claim any
member's identity. What these tests check holds anyway, because it is validation of what
arrives, not of who sent it:

- a message that cannot be decoded (a garbage configuration entry, a command that is no
  key-value command, a snapshot whose configuration or data does not decode), a term or
  index at or above 2**63, or a frame of more than ``MAX_FRAME_ELEMENTS`` elements is
  refused with a log line naming what was wrong; the connection closes; no server's log,
  term, leader or data changes, and a server restarted afterwards starts;
- a TimeoutNow from a server that is not the leader starts no election;
- a forged msgpack-rpc response that is not a well-formed answer is never served.

What only TLS stops (a peer's identity bound to its certificate; tests completed with TLS
on after merging the ``tls`` branch): well-formed messages under a member's identity with
a newer term — an AppendEntries with valid entries, an InstallSnapshot with a valid-looking
payload (``test_a_valid_looking_snapshot...`` shows the plain-mode part), a RequestVote
or TimeoutNow with a term below 2**63 (a term of 2**63 - 1 leaves no next term to elect a
leader in: plain mode cannot refuse it), a TimeoutNow claiming the leader's own identity —
and well-formed forged responses, which the ``tls`` branch drops by matching answers to
the peer and connection a request went to.

Every test ends by checking, on every running server, that every acknowledged write is
there with its value and no key the attacker wrote is.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

from raftsim.core.configuration import Configuration, ServerInfo, encode_indexed
from raftsim.core.messages import (
    AppendEntries,
    Entry,
    EntryKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    TimeoutNow,
)
from raftsim.live.transport import HELLO, PROTOCOL_VERSION
from raftsim.runtime.kv import encode_put
from raftsim.wire import FrameDecoder, Notification, decode_message, encode_frame, encode_message
from tests.livecluster import AgentProcesses, http, raft_stats, wait_until

#: keys only the attacker writes: no server may ever serve one
FORGED = ("forged", "forged-batch", "forged-snap")
#: a largest term the wire still takes (2**63 - 1) and the two it refused in the attack
HUGE_TERMS = (2**63, 2**64 - 1)


class Cluster:
    """Three agent processes; ``absent`` is stopped, so its identity is free to forge."""

    def __init__(self, root: Path) -> None:
        self.agents = AgentProcesses(root, 3)
        self.agents.start()
        self.leader = self.agents.wait_for_leader()
        self.absent = max(sid for sid in self.agents.running() if sid != self.leader)
        self.follower = next(sid for sid in self.agents.running()
                             if sid not in (self.leader, self.absent))
        self.agents.kill(self.absent)
        #: every write a client was told succeeded: key -> value
        self.acked: dict[str, bytes] = {}
        self.writes = 0

    @property
    def up(self) -> list[str]:
        return [self.leader, self.follower]

    def url(self, sid: str) -> str:
        return self.agents.url(sid)

    def rpc(self, sid: str) -> tuple[str, int]:
        host, _, port = self.agents.spec(sid).rpc.rpartition(":")
        return host, int(port)

    def stats(self, sid: str) -> dict[str, str]:
        return raft_stats(self.url(sid))

    def term(self) -> int:
        terms = {int(self.stats(sid)["term"]) for sid in self.up}
        assert len(terms) == 1, terms
        return terms.pop()

    def last_index(self, sid: str) -> int:
        return int(self.stats(sid)["last_log_index"])

    def write(self, count: int = 3) -> None:
        """Acknowledged writes through both servers (the follower forwards)."""
        for n in range(count):
            self.writes += 1
            key, value = f"k{self.writes}", b"v%d" % self.writes
            via = self.up[n % 2]
            status, body = http("PUT", f"{self.url(via)}/v1/kv/{key}", value)
            assert (status, body) == (200, b"true"), (via, status, body)
            self.acked[key] = value

    def served(self, sid: str, key: str) -> bytes | None:
        """``sid``'s own value of ``key`` (``?stale``); None if it has none."""
        status, body = http("GET", f"{self.url(sid)}/v1/kv/{urllib.parse.quote(key)}?stale")
        assert status in (200, 404), (sid, key, status, body)
        return body if status == 200 else None

    def assert_no_write_lost_and_nothing_forged(self, among: Sequence[str] | None = None
                                                ) -> None:
        self.write(2)  # and the cluster still commits
        for sid in among or self.up:
            def intact(sid: str = sid) -> bool:
                try:
                    return all(self.served(sid, k) == v for k, v in self.acked.items())
                except OSError:  # just restarted: its HTTP port is not open yet
                    return False

            wait_until(intact, 15.0, f"every acknowledged write on {sid}")
            for key in FORGED:
                assert self.served(sid, key) is None, (sid, key)

    def refusals(self, sid: str, remote: str) -> list[str]:
        """Warnings ``sid`` logged about the connection from ``remote``."""
        return [line for line in self.agents.log(sid).splitlines()
                if "WARNING" in line and (f"({remote})" in line or f"from {remote}:" in line)]

    def restart(self, sid: str) -> None:
        """kill -9 and start again: what it persisted must still load."""
        self.agents.kill(sid)
        self.agents.start(sid)
        wait_until(lambda: self.agents.agreed_leader(self.up), 30.0, "a leader after restart")
        assert self.agents.processes[sid].poll() is None, self.agents.log(sid)[-2000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    live = Cluster(Path(tmp_path_factory.mktemp("hostile")))
    try:
        live.write(4)
        yield live
        live.agents.start(live.absent)  # the last check: it catches up on all of it
        live.assert_no_write_lost_and_nothing_forged([*live.up, live.absent])
    finally:
        live.agents.close()


class Forger:
    """A raw socket to ``target``'s RPC port that said hello as ``identity``."""

    def __init__(self, cluster: Cluster, target: str, identity: str) -> None:
        self.sock = socket.create_connection(cluster.rpc(target), timeout=5.0)
        self.remote = "{}:{}".format(*self.sock.getsockname()[:2])
        self.decoder = FrameDecoder()
        self.send_raw(encode_frame(Notification(HELLO, [PROTOCOL_VERSION, identity,
                                                        f"{identity}.global"])))

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the server closed the connection while we were sending: refused

    def send(self, *messages: Message) -> None:
        self.send_raw(b"".join(encode_message(m) for m in messages))

    def receive(self, kind: type, timeout: float = 10.0) -> Any:
        """The next Raft message of type ``kind`` the server sends on this connection."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            assert data, "the server closed the connection"
            for frame in self.decoder.feed(data):
                if isinstance(frame, Notification) and frame.method == kind.__name__:
                    return decode_message(frame)
        raise AssertionError(f"no {kind.__name__} within {timeout} s")

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def refused(cluster: Cluster, target: str, forger: Forger, reason: str) -> str:
    """The connection was closed by ``target``, which logged ``reason`` about it."""
    try:
        assert forger.closed_by_server(), "the server kept the forger's connection open"
    finally:
        forger.close()
    lines = wait_until(lambda: [line for line in cluster.refusals(target, forger.remote)
                                if re.search(reason, line)], 5.0, f"a log line: {reason}")
    return lines[0]


CONFIG = Configuration((ServerInfo("absent", "127.0.0.1:9"),))
#: a forged answer nested 40 deep (the wire allows 64 in a response)
NESTED: list[Any] = []
for _ in range(40):
    NESTED = [NESTED]


def forged_append(cluster: Cluster, target: str, *entries: tuple[EntryKind, bytes],
                  term_step: int = 1) -> AppendEntries:
    """An AppendEntries from ``absent`` with a newer term, appending after ``target``'s
    last entry and claiming them committed: what would have poisoned it."""
    term = cluster.term() + term_step
    last = cluster.last_index(target)
    built = tuple(Entry(term, last + n, kind, data)
                  for n, (kind, data) in enumerate(entries, start=1))
    return AppendEntries(term, cluster.absent, target, last, 0, built, last + len(built))


def assert_unchanged(cluster: Cluster, term: int, last: dict[str, int]) -> None:
    assert cluster.agents.agreed_leader(cluster.up) == cluster.leader
    assert cluster.term() == term
    for sid, index in last.items():
        assert cluster.last_index(sid) >= index


def snapshot(cluster: Cluster) -> tuple[int, dict[str, int]]:
    """Term and last indexes before an attack. The leader is whoever leads now (a
    restart in an earlier test may have moved it); the attack must not move it."""
    leader = wait_until(lambda: cluster.agents.agreed_leader(cluster.up), 15.0, "a leader")
    cluster.leader, cluster.follower = leader, next(s for s in cluster.up if s != leader)
    return cluster.term(), {sid: cluster.last_index(sid) for sid in cluster.up}


# ---------------------------------------------------------------------- AppendEntries


@pytest.mark.parametrize("data", [
    b"\xff\x00 not json",
    b'[["absent","127.0.0.1:9",1]]',  # JSON the core decodes, but not a configuration's
    b'[["absent","127.0.0.1:9",false]]',  # no voter left
], ids=["garbage", "not canonical", "no voter"])
def test_a_forged_append_entries_with_a_garbage_configuration_is_refused(
        cluster: Cluster, data: bytes) -> None:
    term, last = snapshot(cluster)
    for target in cluster.up:
        forger = Forger(cluster, target, cluster.absent)
        forger.send(forged_append(cluster, target, (EntryKind.CONFIGURATION, data)))
        refused(cluster, target, forger, r"invalid message: AppendEntries: entries\[0\] is "
                                         r"not a valid configuration")
    assert_unchanged(cluster, term, last)
    cluster.restart(cluster.follower)  # before: a crash at every restart
    assert cluster.term() >= term
    cluster.assert_no_write_lost_and_nothing_forged()


@pytest.mark.parametrize("data", [
    b"\xc1",
    msgpack.packb(["put", "forged", "not bin", None]),
    msgpack.packb(["batch", [["put", "forged-batch", b"x", None], "junk"]],
                  use_bin_type=True),
    encode_put("forged", b"x") + b"\x00",
], ids=["not msgpack", "wrong types", "bad batch", "two values"])
def test_a_forged_append_entries_with_a_command_that_is_no_command_is_refused(
        cluster: Cluster, data: bytes) -> None:
    term, last = snapshot(cluster)
    target = cluster.follower
    forger = Forger(cluster, target, cluster.absent)
    forger.send(forged_append(cluster, target, (EntryKind.COMMAND, data)))
    refused(cluster, target, forger,
            r"invalid message: AppendEntries: entries\[0\] is not a valid command")
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


def test_forged_entries_that_do_not_follow_each_other_are_refused(cluster: Cluster) -> None:
    term, last = snapshot(cluster)
    target = cluster.follower
    message = forged_append(cluster, target, (EntryKind.NOOP, b""), (EntryKind.NOOP, b""))
    gap = AppendEntries(message.term, message.source, target, message.prev_log_index, 0,
                        (message.entries[0], Entry(message.term, message.entries[1].index + 5,
                                                   EntryKind.NOOP, b"")), 0)
    forger = Forger(cluster, target, cluster.absent)
    forger.send(gap)
    refused(cluster, target, forger, r"entries\[1\]\.index must be")
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


# ---------------------------------------------------------------------- InstallSnapshot


def _kv_snapshot(index: int, items: dict[str, bytes]) -> bytes:
    return msgpack.packb([index, [[k, v, index, index] for k, v in sorted(items.items())]],
                         use_bin_type=True)


@pytest.mark.parametrize("part", ["data", "configuration"])
def test_a_forged_install_snapshot_with_a_garbage_payload_is_refused(
        cluster: Cluster, part: str) -> None:
    term, last = snapshot(cluster)
    for target in cluster.up:
        index = cluster.last_index(target) + 100
        configuration, data = encode_indexed(index, CONFIG), _kv_snapshot(
            index, {"forged-snap": b"x"})
        if part == "data":
            data = b"garbage, not a snapshot"
        else:
            configuration = b"\x00garbage"
        forger = Forger(cluster, target, cluster.absent)
        forger.send(InstallSnapshot(cluster.term() + 1, cluster.absent, target, index,
                                    cluster.term(), configuration, data))
        refused(cluster, target, forger, f"invalid message: InstallSnapshot: {part} is not")
    assert_unchanged(cluster, term, last)
    cluster.restart(cluster.follower)  # before: the garbage was installed and persisted
    cluster.assert_no_write_lost_and_nothing_forged()


def test_a_valid_looking_snapshot_with_a_stale_term_changes_nothing(cluster: Cluster) -> None:
    """A well-formed snapshot that would replace the follower's state. Under an older
    term Raft refuses it; under the current or a newer term, plain RPC installs it (the
    forger is "a member"): only TLS stops that (see the module docstring)."""
    term, last = snapshot(cluster)
    target = cluster.follower
    index = cluster.last_index(target) + 100
    forger = Forger(cluster, target, cluster.absent)
    forger.send(InstallSnapshot(term - 1, cluster.absent, target, index, term - 1,
                                encode_indexed(index, CONFIG),
                                _kv_snapshot(index, {"forged-snap": b"x"})))
    answer = forger.receive(InstallSnapshotResponse)
    assert answer.term == term and answer.match_index == 0  # "your term is stale"
    forger.close()
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


# ---------------------------------------------------------------------- votes and terms


@pytest.mark.parametrize("huge", HUGE_TERMS)
def test_a_request_vote_with_a_term_at_or_above_2_63_is_refused(cluster: Cluster,
                                                                huge: int) -> None:
    """Before: every server took term 2**64 - 1, whose next term cannot be encoded, and
    the cluster stayed without a leader for good."""
    term, last = snapshot(cluster)
    for target in cluster.up:
        forger = Forger(cluster, target, cluster.absent)
        forger.send(RequestVote(huge, cluster.absent, target, 2**62, 2**62, False, True))
        refused(cluster, target, forger, r"RequestVote\.term must be an int in \[0, 2\*\*63\)")
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


def test_a_timeout_now_storm_from_a_server_that_is_not_the_leader_elects_nobody(
        cluster: Cluster) -> None:
    """Before: each TimeoutNow started an election at once, so a storm of them kept the
    cluster changing leaders. Only the leader hands leadership over."""
    term, last = snapshot(cluster)
    forger = Forger(cluster, cluster.follower, cluster.absent)
    for _ in range(20):
        forger.send(*(TimeoutNow(term, cluster.absent, cluster.follower) for _ in range(25)))
        wait_until(lambda: cluster.stats(cluster.follower)["state"], 5.0, "an answer")
    forger.close()
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


# ---------------------------------------------------------------------- frames


def _empty_arrays(size: int) -> bytes:
    inner = 65535
    body = (b"\xdc" + inner.to_bytes(2, "big") + b"\x90" * inner) * (size // inner)
    return b"\x93\x02\xadAppendEntries\xdc" + (size // inner).to_bytes(2, "big") + body


def test_a_frame_of_eight_mib_of_empty_arrays_is_refused_without_stalling_the_leader(
        cluster: Cluster) -> None:
    """Before: building such a frame took the leader's event loop for seconds (and half
    a GiB), longer than an election timeout, so the followers elected a new leader. (One
    connection at a time: a second one saying the same hello replaces the first.)"""
    term, last = snapshot(cluster)
    forger = Forger(cluster, cluster.leader, cluster.absent)
    forger.send_raw(_empty_arrays(8 << 20))
    refused(cluster, cluster.leader, forger, r"bad frame: a frame with more than \d+ elements")
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


# ---------------------------------------------------------------------- responses


def _forward_reads(cluster: Cluster, count: int) -> list[tuple[int, bytes]]:
    """Linearizable reads through the follower, which forwards each to the leader."""
    keys = list(cluster.acked)
    return [http("GET", f"{cluster.url(cluster.follower)}/v1/kv/{keys[n % len(keys)]}")
            for n in range(count)]


@pytest.mark.parametrize("result", [
    "garbage",
    [200, "not a header list", b"forged"],
    NESTED,
    {"Status": 200, "Body": b"forged"},
], ids=["a str", "bad headers", "nested", "a map"])
def test_forged_responses_that_are_no_answer_are_never_served(cluster: Cluster,
                                                              result: Any) -> None:
    """Forwarded requests wait for an answer matched by msgid; the forger sprays answers
    for every msgid a follower will use. A malformed one fails its request (500) and is
    never served as a value; the follower keeps serving. (A well-formed forged answer is
    dropped by matching answers to the peer and connection they came from: tls branch.)"""
    term, last = snapshot(cluster)
    forger = Forger(cluster, cluster.follower, cluster.absent)
    for start in range(0, 4096, 512):
        forger.send_raw(b"".join(msgpack.packb([1, msgid, None, result], use_bin_type=True)
                                 for msgid in range(start, start + 512)))
    answers = _forward_reads(cluster, 20)
    forger.close()
    for status, body in answers:
        assert status in (200, 500), (status, body)
        if status == 200:
            assert body in cluster.acked.values(), body
    assert_unchanged(cluster, term, last)
    cluster.assert_no_write_lost_and_nothing_forged()


def test_the_refusals_name_what_was_wrong(cluster: Cluster) -> None:
    """One line per refused connection in each server's log, saying why."""
    for sid in cluster.up:
        lines = [line for line in cluster.agents.log(sid).splitlines()
                 if "closing RPC connection" in line and "WARNING" in line]
        assert lines, cluster.agents.log(sid)[-2000:]
        assert all(len(line) < 600 for line in lines)
        assert not any("Traceback" in line for line in cluster.agents.log(sid).splitlines())

"""Bad input on a live server's RPC port: only that connection closes, with one log line,
and the cluster keeps committing throughout.

A 3-server cluster on one event loop (real TCP on loopback, real files) with a writer
that commits continuously through the leader; each attack connects to the leader's RPC
port. The attacker says hello as "mallory", a non-voter added to the configuration at an
address where nobody listens: a server accepts connections from configured peers only
(and one per peer), so this is how an attack gets past the hello without TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from raftsim.core.configuration import ChangeKind, ConfigChange
from raftsim.core.messages import MESSAGE_TYPES
from raftsim.live.transport import (
    HELLO,
    MAX_UNIDENTIFIED,
    PING,
    PRE_HELLO_BYTES,
    PROTOCOL_VERSION,
)
from raftsim.runtime.kv import encode_put
from raftsim.wire import (
    MAX_FRAME_BYTES,
    Notification,
    WireError,
    decode_frame,
    decode_message,
    encode_frame,
)
from tests.livecluster import (
    RETRY_PAUSE,
    TEST_LINKS,
    ThreadedCluster,
    free_ports,
    wait_until,
)


class Records(logging.Handler):
    """Every record of the live transport's logger, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def about(self, remote: str, since: int = 0) -> list[str]:
        """Warnings naming ``remote`` logged after the first ``since`` records (an
        ephemeral port is reused across attacks, so older lines may name it too)."""
        with self._lock:
            return [r.getMessage() for r in self.records[since:]
                    if r.levelno >= logging.WARNING and remote in r.getMessage()]


class Live:
    def __init__(self, cluster: ThreadedCluster, records: Records) -> None:
        self.cluster = cluster
        self.records = records
        self.commits = 0
        self.errors = 0
        self.leader = cluster.wait_for_leader()
        self.term = cluster.inspect(lambda: cluster.server(self.leader).node.term)  # type: ignore[union-attr]
        self._stop = False
        self._writer = asyncio.run_coroutine_threadsafe(self._write(), cluster.loop)

    async def _write(self) -> None:
        n = 0
        while not self._stop:
            n += 1
            try:
                await self.cluster.server(self.leader).propose(encode_put(f"w{n}", b"x"),
                                                               timeout=2.0)
                self.commits += 1
            except Exception:
                self.errors += 1
                await asyncio.sleep(RETRY_PAUSE)

    def stop(self) -> None:
        self._stop = True
        self._writer.result(10)

    def address(self) -> tuple[str, int]:
        return self.cluster.rpc_address(self.leader)

    def assert_healthy_during(self, attack: Any) -> Any:
        """Run ``attack()``; the writer must commit during it and afterwards, and the
        leader and its term must not change."""
        before = self.commits
        result = attack()
        wait_until(lambda: self.commits >= before + 5, 10.0, "commits during the attack")
        assert self.cluster.leader() == self.leader
        assert self.cluster.inspect(
            lambda: self.cluster.server(self.leader).node.term) == self.term  # type: ignore[union-attr]
        return result


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    records = Records()
    logger = logging.getLogger("raftsim.live.transport")
    logger.addHandler(records)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    cluster = ThreadedCluster(Path(tmp_path_factory.mktemp("bad-input")), links=TEST_LINKS)
    try:
        state = Live(cluster, records)
        unused = free_ports(1)[0]
        change = ConfigChange(ChangeKind.ADD_NONVOTER, "mallory", f"127.0.0.1:{unused}")
        cluster.call(cluster.server(state.leader).change_configuration(change))
        wait_until(lambda: all("mallory" in cluster.inspect(
            lambda sid=sid: cluster.server(sid).configuration.ids) for sid in cluster.agents),
            10.0, "every server to know mallory")
        yield state
        state.stop()
        assert state.errors == 0
    finally:
        cluster.close()
        logger.removeHandler(records)
        logger.setLevel(previous)


def hello(server_id: str = "mallory") -> bytes:
    return encode_frame(Notification(HELLO, [PROTOCOL_VERSION, server_id, "mallory.global"]))


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Read until the server closes the connection (True) or ``timeout`` passes."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset: the server aborted the connection
        return True
    return True


def attack(live: Live, payload: bytes, *, with_hello: bool = False,
           timeout: float = 5.0) -> str:
    """Connect to the leader's RPC port, send ``payload``; the connection must be
    closed by the server with exactly one warning line. Returns that line."""
    since = live.records.count()
    with socket.create_connection(live.address(), timeout=timeout) as sock:
        remote = "{}:{}".format(*sock.getsockname()[:2])
        try:
            sock.sendall((hello() if with_hello else b"") + payload)
        except OSError:
            pass  # closed while we were still sending: that is the point
        assert closed_by_server(sock, timeout), "the server kept a bad connection open"
    lines = wait_until(lambda: live.records.about(remote, since), 5.0, "the log line")
    assert len(lines) == 1, lines
    return lines[0]


def test_every_server_is_connected_once_to_every_other(live: Live) -> None:
    cluster = live.cluster

    def links() -> dict[str, list[str]]:
        return {sid: a.transport.connected() for sid, a in cluster.agents.items()  # type: ignore[union-attr]
                if a.transport is not None}

    assert wait_until(lambda: links() == {"s1": ["s2", "s3"], "s2": ["s1", "s3"],
                                          "s3": ["s1", "s2"]}, 10.0, "all links")
    names = cluster.inspect(lambda: dict(cluster.agents["s1"].transport.names))  # type: ignore[union-attr]
    assert names == {"s1": "s1.global", "s2": "s2.global", "s3": "s3.global"}

    def endpoints() -> set[frozenset[tuple[str, int]]]:
        # each link as {local address, remote address}: one per pair means 3 in all
        found = set()
        for agent in cluster.agents.values():
            assert agent.transport is not None
            for link in agent.transport._links.values():
                sock = link.writer.get_extra_info("socket")
                found.add(frozenset([sock.getsockname()[:2], sock.getpeername()[:2]]))
        return found

    assert len(cluster.inspect(endpoints)) == 3


def test_random_bytes_close_the_connection(live: Live) -> None:
    line = live.assert_healthy_during(lambda: attack(live, b"\xc1" + os.urandom(4096)))
    assert "bad frame" in line


def test_random_bytes_after_a_hello_close_the_connection(live: Live) -> None:
    live.assert_healthy_during(lambda: attack(live, b"\xc1" * 64, with_hello=True))


def test_a_valid_frame_with_the_wrong_types_closes_the_connection(live: Live) -> None:
    """An AppendEntries whose term is a string: a well-formed frame, not a message."""
    fields = ["two", "mallory", live.leader, 0, 0, [], 0, 0]
    payload = msgpack.packb([2, "AppendEntries", fields], use_bin_type=True)
    line = live.assert_healthy_during(lambda: attack(live, payload, with_hello=True))
    assert "invalid message" in line


def test_a_request_with_a_msgid_that_is_not_an_int_closes_the_connection(live: Live) -> None:
    payload = msgpack.packb([0, "one", "api.forward", []], use_bin_type=True)
    live.assert_healthy_during(lambda: attack(live, payload, with_hello=True))


def test_a_message_claiming_another_sender_closes_the_connection(live: Live) -> None:
    other = next(sid for sid in live.cluster.agents if sid != live.leader)
    message = msgpack.packb([2, "RequestVote", [99, other, live.leader, 0, 0, True, False]],
                            use_bin_type=True)
    line = live.assert_healthy_during(lambda: attack(live, message, with_hello=True))
    assert "on the connection from 'mallory'" in line


def test_anything_before_the_hello_closes_the_connection(live: Live) -> None:
    payload = encode_frame(Notification("raftsim.ping", []))
    payload += msgpack.packb([2, "AppendEntries", []], use_bin_type=True)
    line = live.assert_healthy_during(lambda: attack(live, payload))
    assert "expected a raftsim.hello first" in line


def test_an_array_header_claiming_4_billion_elements_closes_at_once(live: Live) -> None:
    live.assert_healthy_during(lambda: attack(live, b"\xdd\xff\xff\xff\xff"))


def test_a_bin_header_claiming_4_gib_closes_when_the_frame_stays_incomplete(
        live: Live) -> None:
    """A Notification whose one param claims 4 GiB, and nothing more: the frame never
    completes, so the partial-frame timeout closes it."""
    payload = b"\x93\x02\xa1m\x91\xc6\xff\xff\xff\xff"
    line = live.assert_healthy_during(
        lambda: attack(live, payload, with_hello=True,
                       timeout=TEST_LINKS.frame_timeout + 5.0))
    assert "stayed incomplete" in line


def test_a_bin_header_claiming_4_gib_followed_by_data_closes_at_the_frame_limit(
        live: Live) -> None:
    payload = b"\x93\x02\xa1m\x91\xc6\xff\xff\xff\xff" + bytes(MAX_FRAME_BYTES + 65536)
    line = live.assert_healthy_during(lambda: attack(live, payload, with_hello=True))
    assert "over the limit" in line


def test_a_connection_gets_64_kib_to_say_hello(live: Live) -> None:
    """Before its hello, a connection does not get the 4 MiB frame limit."""
    payload = b"\x93\x02\xa1m\x91\xc6\xff\xff\xff\xff" + bytes(PRE_HELLO_BYTES + 65536)
    line = live.assert_healthy_during(lambda: attack(live, payload))
    assert "no hello" in line


def test_a_flood_of_connections_that_never_say_hello_is_refused_past_a_limit(
        live: Live) -> None:
    def flood() -> None:
        sockets = [socket.create_connection(live.address(), timeout=5)
                   for _ in range(MAX_UNIDENTIFIED)]
        try:
            with socket.create_connection(live.address(), timeout=5) as extra:
                assert closed_by_server(extra, 5.0)
            lines = wait_until(lambda: live.records.about("refusing"), 5.0, "the refusal")
            assert len(lines) == 1 and "have not said hello" in lines[0]
        finally:
            for sock in sockets:
                sock.close()

    live.assert_healthy_during(flood)


def test_a_slow_loris_is_closed_by_the_partial_frame_timeout(live: Live) -> None:
    """One byte per 0.2 s of a frame that would be valid: the connection is never idle,
    but the frame stays incomplete past the frame timeout."""
    frame = encode_frame(Notification("raftsim.ping", [b"x" * 64]))

    def slow() -> str:
        since = live.records.count()
        with socket.create_connection(live.address(), timeout=5) as sock:
            remote = "{}:{}".format(*sock.getsockname()[:2])
            sock.sendall(hello())
            closed = False
            for byte in frame:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                if closed_by_server(sock, 0.2):  # the pace of the attack, and the check
                    closed = True
                    break
            assert closed, "a slow-loris connection outlived its frame"
        lines = wait_until(lambda: live.records.about(remote, since), 5.0, "the log line")
        assert len(lines) == 1, lines
        return lines[0]

    assert "stayed incomplete" in live.assert_healthy_during(slow)


def test_a_silent_connection_is_closed_by_the_idle_timeout(live: Live) -> None:
    line = live.assert_healthy_during(
        lambda: attack(live, b"", timeout=TEST_LINKS.idle_timeout + 5.0))
    assert "nothing received" in line


# ---------------------------------------------------------------------- generated frames

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=12)
_methods = (st.sampled_from(sorted(t.__name__ for t in MESSAGE_TYPES))
            | st.text(max_size=12).filter(lambda m: m not in (HELLO, PING)))


@st.composite
def bad_frames(draw: st.DrawFn) -> bytes:
    """msgpack values that are not a frame, or notifications that are not a valid Raft
    message (wrong fields, wrong types), or requests/responses with a bad layout."""
    kind = draw(st.sampled_from(["value", "notification", "request", "response"]))
    if kind == "value":
        obj: Any = draw(_values)
    elif kind == "notification":
        obj = [2, draw(_methods), draw(st.lists(_values, max_size=9))]
    elif kind == "request":
        obj = [0, draw(_values), draw(_values), draw(_values)]
    else:
        obj = [1, draw(_values), draw(_values), draw(_values), *draw(st.lists(_values,
                                                                              max_size=2))]
    data = msgpack.packb(obj, use_bin_type=True)
    try:
        frame = decode_frame(data)
    except WireError:
        return data  # not a frame at all
    if isinstance(frame, Notification):
        try:
            decode_message(frame)
        except WireError:
            return data  # a frame, but not a Raft message
    assume(False)  # a valid frame: not what this test is about
    raise AssertionError("unreachable")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(payload=bad_frames())
def test_generated_bad_frames_close_only_their_connection(live: Live, payload: bytes) -> None:
    assert attack(live, payload, with_hello=True)


def test_the_cluster_committed_throughout_the_generated_frames(live: Live) -> None:
    before = live.commits
    wait_until(lambda: live.commits >= before + 5, 10.0, "commits")
    assert live.cluster.leader() == live.leader

"""``RaftNode.propose_many``: several commands appended one entry each, as ``propose``
one after the other would, with one round of messages (what a leader with one entry per
command proposes in one turn; hashicorp/raft dispatches its applies the same way)."""

from __future__ import annotations

import pytest

from raftsim.core.errors import NotLeader, UncommittedLimitReached
from raftsim.core.messages import AppendEntries, Entry, EntryKind, command_entries
from raftsim.core.settings import NodeSettings
from tests.corenet import CoreNet

COMMANDS = [f"cmd{n}".encode() for n in range(40)]


def leader_net(settings: NodeSettings | None = None) -> CoreNet:
    net = CoreNet(seed=3, settings=settings) if settings else CoreNet(seed=3)
    net.campaign("a")
    net.deliver_all()
    return net


def test_the_same_entries_as_one_propose_each_with_one_round_of_messages() -> None:
    one_by_one, at_once = leader_net(), leader_net()
    sent_before = len(one_by_one.sent)
    for command in COMMANDS:
        one_by_one.propose("a", command)
    one_by_one_messages = len(one_by_one.sent) - sent_before
    sent_before = len(at_once.sent)
    node = at_once.nodes["a"]
    first_expected = node.log.last_index + 1
    ready, count = node.propose_many(COMMANDS, at_once.now)
    at_once.handle("a", ready)
    assert count == len(COMMANDS)
    assert ready.proposed == (first_expected, node.term)
    appends = [m for m in at_once.sent[sent_before:] if isinstance(m, AppendEntries)]
    assert len(appends) < one_by_one_messages
    for net in (one_by_one, at_once):
        net.deliver_all()
        net.tick(0.2)  # a heartbeat carries the commit index to the followers
        net.deliver_all()
    a1, a2 = one_by_one.nodes["a"], at_once.nodes["a"]
    assert a1.log.slice(1, a1.log.last_index + 1) == a2.log.slice(1, a2.log.last_index + 1)
    assert a1.commit_index == a2.commit_index == a2.log.last_index
    assert one_by_one.applied["c"] == at_once.applied["c"]


def test_the_uncommitted_limit_takes_a_prefix_and_refuses_a_first_command_past_it() -> None:
    net = leader_net(NodeSettings(max_uncommitted_bytes=100))
    net.partition(["a"], ["b", "c"])  # nothing commits
    node = net.nodes["a"]
    ready, count = node.propose_many([b"x" * 40] * 5, net.now)
    net.handle("a", ready)
    assert count == 2 and node.uncommitted_bytes == 80  # the first always; 80 + 40 > 100
    with pytest.raises(UncommittedLimitReached):
        node.propose_many([b"y" * 40], net.now)


def test_only_a_leader_takes_them() -> None:
    net = leader_net()
    with pytest.raises(NotLeader):
        net.nodes["b"].propose_many(COMMANDS, net.now)
    with pytest.raises(ValueError, match="at least one command"):
        net.nodes["a"].propose_many([], net.now)


def test_command_entries_are_the_entries_the_constructor_builds() -> None:
    """Built by setting slots, they equal, hash and compare as ``Entry(...)``, and stay
    frozen."""
    built = command_entries(3, 10, [b"a", b"bb", b""])
    expected = [Entry(3, 10 + n, EntryKind.COMMAND, data)
                for n, data in enumerate([b"a", b"bb", b""])]
    assert built == expected
    assert [hash(e) for e in built] == [hash(e) for e in expected]
    assert repr(built[1]) == repr(expected[1])
    with pytest.raises(AttributeError):
        built[0].term = 4  # type: ignore[misc]

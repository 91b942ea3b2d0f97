"""The simulated network: latency, loss, duplication, reordering, partitions, crashes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from raftsim.sim.loop import VirtualTimeLoop
from raftsim.sim.network import NetworkObserver, SimNetwork

Arrival = tuple[float, str, str, bytes]


class Harness:
    """A loop, a network and nodes that log what they receive."""

    def __init__(self, seed: int = 1, nodes: tuple[str, ...] = ("a", "b", "c"),
                 **settings: Any) -> None:
        self.loop = VirtualTimeLoop()
        self.events: list[tuple[Any, ...]] = []
        self.net = SimNetwork(self.loop, random.Random(seed), observer=self, **settings)
        self.arrivals: list[Arrival] = []
        for node in nodes:
            self.net.attach(node, self.receiver(node))

    def receiver(self, node: str) -> Any:
        def deliver(source: str, data: bytes) -> None:
            self.arrivals.append((self.loop.time(), source, node, data))
        return deliver

    # observer hooks
    def on_send(self, serial: int, source: str, target: str, meta: object) -> None:
        self.events.append(("send", serial, source, target, meta, self.loop.time()))

    def on_deliver(self, serial: int, source: str, target: str, meta: object) -> None:
        self.events.append(("deliver", serial, source, target, meta, self.loop.time()))

    def on_drop(self, serial: int, source: str, target: str, meta: object,
                reason: str) -> None:
        self.events.append(("drop", serial, source, target, reason))

    def drops(self) -> list[str]:
        return [e[4] for e in self.events if e[0] == "drop"]

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def make(**kwargs: Any) -> Harness:
    return Harness(**kwargs)


# ---------------------------------------------------------------------- delivery


def test_message_arrives_with_source_and_bytes(h: Harness) -> None:
    h.net.send("a", "b", b"hello", meta="m")
    assert h.arrivals == []  # never synchronous
    h.loop.run_for(1.0)
    assert [(s, t, d) for _, s, t, d in h.arrivals] == [("a", "b", b"hello")]
    assert [e[0] for e in h.events] == ["send", "deliver"]
    assert h.events[0][1:5] == (1, "a", "b", "m")
    assert (h.net.sent, h.net.delivered, h.net.dropped, h.net.in_flight) == (1, 1, 0, 0)


def test_serials_increase_per_send(h: Harness) -> None:
    for _ in range(5):
        h.net.send("a", "b", b"x")
    assert [e[1] for e in h.events if e[0] == "send"] == [1, 2, 3, 4, 5]


def test_latency_stays_within_bounds() -> None:
    h = make(latency=(0.010, 0.020))
    try:
        sent_at: dict[int, float] = {}
        for k in range(2000):  # spaced wider than the latency: no message waits for another
            h.loop.call_at(k * 0.025, lambda: h.net.send("a", "b", b"x"))
        h.loop.run_for(60.0)
        for event in h.events:
            if event[0] == "send":
                sent_at[event[1]] = event[5]
        delays = [e[5] - sent_at[e[1]] for e in h.events if e[0] == "deliver"]
        assert len(delays) == 2000
        assert 0.010 - 1e-12 <= min(delays) < 0.011
        assert 0.019 < max(delays) <= 0.020 + 1e-12
    finally:
        h.close()


def test_loss_rate_matches_probability() -> None:
    h = make(loss=0.3)
    try:
        for _ in range(10_000):
            h.net.send("a", "b", b"x")
        h.loop.run_for(1.0)
        assert 0.28 < h.net.dropped / 10_000 < 0.32
        assert h.net.dropped == h.net.dropped_by_reason["loss"]
        assert set(h.drops()) == {"loss"}
        assert h.net.delivered + h.net.dropped == h.net.sent
    finally:
        h.close()


def test_duplication_delivers_twice_with_the_same_serial() -> None:
    h = make(duplication=1.0)
    try:
        h.net.send("a", "b", b"x")
        h.loop.run_for(1.0)
        assert len(h.arrivals) == 2
        delivered = [e[1] for e in h.events if e[0] == "deliver"]
        assert delivered == [1, 1]
        assert (h.net.sent, h.net.duplicated, h.net.delivered) == (1, 1, 2)
    finally:
        h.close()


def test_duplication_rate_matches_probability() -> None:
    h = make(duplication=0.2)
    try:
        for _ in range(10_000):
            h.net.send("a", "b", b"x")
        h.loop.run_for(1.0)
        assert 0.18 < h.net.duplicated / 10_000 < 0.22
        assert h.net.delivered == 10_000 + h.net.duplicated
    finally:
        h.close()


def test_fixed_latency_keeps_order_and_reorder_breaks_it() -> None:
    def arrival_order(reorder: float) -> list[bytes]:
        h = make(latency=(0.001, 0.001), reorder=reorder)
        try:
            for k in range(200):
                h.loop.call_at(k * 0.0001, h.net.send, "a", "b", str(k).encode())
            h.loop.run_for(1.0)
            return [d for *_, d in h.arrivals]
        finally:
            h.close()

    in_order = [str(k).encode() for k in range(200)]
    assert arrival_order(0.0) == in_order
    shuffled = arrival_order(0.3)
    assert sorted(shuffled) == sorted(in_order)
    assert shuffled != in_order


def test_reordered_message_is_late_by_at_most_ten_max_latencies() -> None:
    h = make(latency=(0.001, 0.002), reorder=1.0)
    try:
        for _ in range(1000):
            h.net.send("a", "b", b"x")
        h.loop.run_for(1.0)
        times = [t for t, *_ in h.arrivals]
        assert len(times) == 1000
        assert max(times) <= 0.002 + 10 * 0.002
        assert max(times) > 0.015
    finally:
        h.close()


# ---------------------------------------------------------------------- partitions


def test_partition_blocks_between_groups_only(h: Harness) -> None:
    h.net.partition([["a", "b"], ["c"]])
    h.net.send("a", "b", b"1")
    h.net.send("b", "a", b"2")
    h.net.send("a", "c", b"3")
    h.net.send("c", "b", b"4")
    h.loop.run_for(1.0)
    assert sorted(d for *_, d in h.arrivals) == [b"1", b"2"]
    assert h.drops() == ["partition", "partition"]
    assert h.net.dropped_by_reason["partition"] == 2


def test_unlisted_nodes_are_alone() -> None:
    h = make(nodes=("a", "b", "c", "d"))
    try:
        h.net.partition([["a", "b"]])
        assert not h.net.reachable("c", "d")
        assert not h.net.reachable("a", "c")
        assert h.net.reachable("a", "b")
        assert h.net.reachable("c", "c")
        h.net.attach("e", h.receiver("e"))  # joins after the partition: alone too
        assert not h.net.reachable("e", "a")
    finally:
        h.close()


def test_new_partition_replaces_the_old_one(h: Harness) -> None:
    h.net.partition([["a"], ["b", "c"]])
    h.net.partition([["a", "b"], ["c"]])
    assert h.net.reachable("a", "b")
    assert not h.net.reachable("b", "c")


def test_cut_is_one_way(h: Harness) -> None:
    h.net.cut("a", "b")
    h.net.send("a", "b", b"blocked")
    h.net.send("b", "a", b"passes")
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"passes"]
    assert h.drops() == ["partition"]


def test_isolate_blocks_both_ways(h: Harness) -> None:
    h.net.isolate("c")
    for source, target in [("a", "c"), ("c", "a"), ("b", "c"), ("a", "b")]:
        h.net.send(source, target, f"{source}{target}".encode())
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"ab"]


def test_heal_removes_partitions_cuts_and_isolation_but_keeps_loss() -> None:
    h = make(loss=0.5, latency=(0.002, 0.003))
    try:
        h.net.partition([["a"], ["b", "c"]])
        h.net.cut("b", "c")
        h.net.isolate("c")
        h.net.heal()
        assert all(h.net.reachable(s, t) for s in "abc" for t in "abc")
        assert h.net.loss == 0.5
        assert h.net.latency == (0.002, 0.003)
    finally:
        h.close()


def test_partition_during_flight_drops_on_arrival(h: Harness) -> None:
    h.net.send("a", "c", b"in flight")
    h.net.partition([["a", "b"], ["c"]])
    h.loop.run_for(1.0)
    assert h.arrivals == []
    assert h.drops() == ["partition"]
    assert h.net.in_flight == 0


def test_heal_during_flight_does_not_revive_a_dropped_message(h: Harness) -> None:
    h.net.cut("a", "b")
    h.net.send("a", "b", b"dropped at send")
    h.net.heal()
    h.net.send("a", "b", b"after heal")
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"after heal"]


# ---------------------------------------------------------------------- crashes


def test_detach_drops_mail_in_flight_and_refuses_sends(h: Harness) -> None:
    h.net.send("a", "b", b"to the dead")
    h.net.detach("b")
    h.net.send("b", "a", b"from the dead")
    h.loop.run_for(1.0)
    assert h.arrivals == []
    assert h.drops() == ["crashed", "crashed"]
    assert h.net.dropped_by_reason["crashed"] == 2
    assert not h.net.is_attached("b")


def test_restarted_node_does_not_get_its_predecessors_mail(h: Harness) -> None:
    h.net.send("a", "b", b"old")
    h.net.detach("b")
    h.net.attach("b", h.receiver("b"))
    h.net.send("a", "b", b"new")
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"new"]
    assert h.drops() == ["crashed"]


def test_mail_from_a_node_that_crashes_after_sending_still_arrives(h: Harness) -> None:
    h.net.send("a", "b", b"last words")
    h.net.detach("a")
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"last words"]


def test_detach_twice_is_harmless_and_unknown_is_an_error(h: Harness) -> None:
    h.net.detach("a")
    h.net.detach("a")
    with pytest.raises(ValueError, match="unknown node 'zz'"):
        h.net.detach("zz")


# ---------------------------------------------------------------------- links


def test_set_link_overrides_one_direction(h: Harness) -> None:
    h.net.set_link("a", "b", loss=1.0, latency=(0.5, 0.5))
    assert h.net.link("a", "b") == (0.5, 0.5, 1.0)
    assert h.net.link("b", "a") == (0.001, 0.005, 0.0)
    h.net.send("a", "b", b"lost")
    h.net.send("b", "a", b"fine")
    h.loop.run_for(1.0)
    assert [d for *_, d in h.arrivals] == [b"fine"]


def test_link_latency_override(h: Harness) -> None:
    h.net.set_link("a", "b", latency=(0.5, 0.5))
    h.net.send("a", "b", b"slow")
    h.loop.run_for(1.0)
    assert h.arrivals[0][0] == 0.5


def test_link_settings_left_out_follow_the_global_ones(h: Harness) -> None:
    h.net.set_link("a", "b", loss=0.25)
    h.net.set_latency(0.1, 0.2)
    assert h.net.link("a", "b") == (0.1, 0.2, 0.25)
    h.net.set_link("a", "b")  # back to the defaults
    h.net.set_loss(0.5)
    assert h.net.link("a", "b") == (0.1, 0.2, 0.5)


def test_global_setters(h: Harness) -> None:
    h.net.set_loss(0.1)
    h.net.set_latency(0.0, 0.0)
    h.net.set_duplication(0.2)
    h.net.set_reorder(0.3)
    assert (h.net.loss, h.net.latency, h.net.duplication, h.net.reorder) == (
        0.1, (0.0, 0.0), 0.2, 0.3)


# ---------------------------------------------------------------------- determinism


def delivery_sequence(seed: int) -> list[tuple[Any, ...]]:
    h = make(seed=seed, loss=0.1, duplication=0.1, reorder=0.1, latency=(0.001, 0.010))
    try:
        rng = random.Random(99)  # the workload is the same whatever the network seed
        for k in range(500):
            source, target = rng.sample(["a", "b", "c"], 2)
            h.loop.call_at(k * 0.002, h.net.send, source, target, str(k).encode())
        h.loop.call_at(0.3, h.net.partition, [["a"], ["b", "c"]])
        h.loop.call_at(0.6, h.net.heal)
        h.loop.run_for(2.0)
        return [(e[0], *e[1:5]) for e in h.events] + list(h.arrivals)
    finally:
        h.close()


def test_same_seed_gives_identical_deliveries() -> None:
    assert delivery_sequence(7) == delivery_sequence(7)


def test_different_seed_gives_different_deliveries() -> None:
    assert delivery_sequence(7) != delivery_sequence(8)


# ---------------------------------------------------------------------- observers


def test_observer_may_define_only_some_hooks() -> None:
    class DropsOnly:
        def __init__(self) -> None:
            self.reasons: list[str] = []

        def on_drop(self, serial: int, source: str, target: str, meta: object,
                    reason: str) -> None:
            self.reasons.append(reason)

    loop = VirtualTimeLoop()
    try:
        observer = DropsOnly()
        net = SimNetwork(loop, random.Random(1), loss=1.0, observer=observer)
        net.attach("a", lambda s, d: None)
        net.attach("b", lambda s, d: None)
        net.send("a", "b", b"x")
        assert observer.reasons == ["loss"]
    finally:
        loop.close()


def test_network_observer_base_gives_no_op_defaults() -> None:
    class Counting(NetworkObserver):
        delivered = 0

        def on_deliver(self, serial: int, source: str, target: str, meta: object) -> None:
            self.delivered += 1

    loop = VirtualTimeLoop()
    try:
        observer = Counting()
        net = SimNetwork(loop, random.Random(1), observer=observer)
        net.attach("a", lambda s, d: None)
        net.attach("b", lambda s, d: None)
        net.send("a", "b", b"x")
        loop.run_for(1.0)
        assert observer.delivered == 1
        net.observer = None
        net.send("a", "b", b"x")
        loop.run_for(1.0)
        assert observer.delivered == 1
    finally:
        loop.close()


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"loss": 1.5}, "loss must be between 0 and 1, got 1.5"),
        ({"loss": -0.1}, "loss must be between 0 and 1"),
        ({"duplication": 2}, "duplication must be between 0 and 1, got 2"),
        ({"reorder": float("nan")}, "reorder must be between 0 and 1"),
        ({"loss": True}, "loss must be between 0 and 1"),
        ({"latency": (0.005, 0.001)}, r"latency must be a \(low, high\) pair"),
        ({"latency": (-0.001, 0.001)}, "0 <= low <= high"),
        ({"latency": (0.0, float("inf"))}, "latency must be"),
        ({"latency": 0.001}, "latency must be"),
    ],
)
def test_constructor_rejects_bad_settings(settings: dict[str, Any], message: str) -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(ValueError, match=message):
            SimNetwork(loop, random.Random(1), **settings)
    finally:
        loop.close()


def test_bad_setters_change_nothing(h: Harness) -> None:
    with pytest.raises(ValueError, match="loss must be between 0 and 1, got 1.5"):
        h.net.set_loss(1.5)
    with pytest.raises(ValueError, match="latency"):
        h.net.set_latency(0.005, 0.001)
    with pytest.raises(ValueError, match="duplication"):
        h.net.set_duplication(-1)
    with pytest.raises(ValueError, match="reorder"):
        h.net.set_reorder(1.01)
    assert (h.net.loss, h.net.latency, h.net.duplication, h.net.reorder) == (
        0.0, (0.001, 0.005), 0.0, 0.0)


def test_bad_set_link_changes_nothing(h: Harness) -> None:
    h.net.set_link("a", "b", loss=0.5)
    with pytest.raises(ValueError, match="unknown node 'zz'"):
        h.net.set_link("a", "zz", loss=0.1)
    with pytest.raises(ValueError, match="latency"):
        h.net.set_link("a", "b", latency=(0.2, 0.1), loss=0.1)
    with pytest.raises(ValueError, match="loss"):
        h.net.set_link("a", "b", latency=(0.1, 0.2), loss=7)
    assert h.net.link("a", "b") == (0.001, 0.005, 0.5)


def test_bad_partition_changes_nothing(h: Harness) -> None:
    h.net.partition([["a", "b"], ["c"]])
    with pytest.raises(ValueError, match="unknown node 'zz'; known nodes: a, b, c"):
        h.net.partition([["a"], ["b", "c", "zz"]])
    with pytest.raises(ValueError, match="node 'a' in more than one group"):
        h.net.partition([["a", "b"], ["a", "c"]])
    with pytest.raises(ValueError, match="must be a list of node ids, got 'ab'"):
        h.net.partition(["ab", "c"])
    with pytest.raises(ValueError, match="list of lists"):
        h.net.partition("abc")
    assert h.net.reachable("a", "b")
    assert not h.net.reachable("a", "c")


def test_bad_cut_and_isolate_change_nothing(h: Harness) -> None:
    with pytest.raises(ValueError, match="cut names unknown node 'zz'"):
        h.net.cut("a", "zz")
    with pytest.raises(ValueError, match="two different nodes"):
        h.net.cut("a", "a")
    with pytest.raises(ValueError, match="isolate names unknown node 'zz'"):
        h.net.isolate("zz")
    assert all(h.net.reachable(s, t) for s in "abc" for t in "abc")


def test_bad_attach_changes_nothing(h: Harness) -> None:
    with pytest.raises(ValueError, match="node 'a' is already attached"):
        h.net.attach("a", lambda s, d: None)
    with pytest.raises(ValueError, match="node_id must be a non-empty string"):
        h.net.attach("", lambda s, d: None)
    with pytest.raises(ValueError, match="deliver must be callable"):
        h.net.attach("d", "not a function")  # type: ignore[arg-type]
    assert h.net.nodes == ("a", "b", "c")
    h.net.send("b", "a", b"still to the first a")
    h.loop.run_for(1.0)
    assert h.arrivals[0][2:] == ("a", b"still to the first a")


# ---------------------------------------------------------------------- chosen drops


def test_a_chosen_message_is_dropped_on_its_way_with_every_copy() -> None:
    h = make(duplication=1.0)
    try:
        h.net.send("a", "b", b"lost", meta="m")
        h.net.send("a", "c", b"kept")
        assert h.net.in_flight == 4
        assert h.net.drop_in_flight(1) is True
        assert h.events[-1] == ("drop", 1, "a", "b", "chosen")  # now, not on arrival
        assert h.net.in_flight == 2 and h.net.dropped_by_reason["chosen"] == 1
        assert h.net.drop_in_flight(1) is False  # gone already
        h.loop.run_for(1.0)
        assert [d for _, _, _, d in h.arrivals] == [b"kept", b"kept"]
        assert h.net.drop_in_flight(2) is False  # arrived
        assert (h.net.in_flight, h.net.delivered, h.net.dropped) == (0, 2, 1)
    finally:
        h.close()


# ---------------------------------------------------------------------- link order


def test_a_link_keeps_send_order_like_the_tcp_connection_it_models() -> None:
    """Latency jitter never reorders one link (the live transport is one TCP connection
    per peer); only the ``reorder`` fault lets a later message overtake."""
    h = make(latency=(0.001, 0.005))
    try:
        for k in range(300):
            h.loop.call_at(k * 0.0001, h.net.send, "a", "b", str(k).encode())
            h.loop.call_at(k * 0.0001, h.net.send, "c", "b", str(k).encode())
        h.loop.run_for(1.0)
        for source in ("a", "c"):
            received = [d for _, s, _, d in h.arrivals if s == source]
            assert received == [str(k).encode() for k in range(300)]
    finally:
        h.close()


def test_a_slow_link_does_not_hold_up_another() -> None:
    """Each link is its own queue: a late message to b delays nothing on the way to c."""
    h = make(latency=(0.001, 0.001))
    try:
        h.net.set_link("a", "b", latency=(0.5, 0.5))
        h.net.send("a", "b", b"slow")
        h.net.send("a", "c", b"fast")
        h.loop.run_for(1.0)
        assert [(t, d) for t, _, _, d in h.arrivals] == [(0.001, b"fast"), (0.5, b"slow")]
    finally:
        h.close()


def test_a_message_is_no_later_than_the_one_before_it_needs() -> None:
    """An arrival is the drawn delay or, if earlier, the previous arrival on the link:
    the running maximum, so each message's draw is still one uniform number."""
    h = make(seed=3, latency=(0.001, 0.005))
    try:
        for _ in range(10):
            h.net.send("a", "b", b"x")
        h.loop.run_for(1.0)
        rng = random.Random(3)
        expected, last = [], 0.0
        for _ in range(10):
            last = max(last, 0.001 + 0.004 * rng.random())
            expected.append(last)
        assert [t for t, *_ in h.arrivals] == expected
    finally:
        h.close()

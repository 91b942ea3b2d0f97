"""The web UI: its session (state serialization, actions, deterministic replay, paced
scenarios), its web application, and the page itself in Debian's Chromium.

The browser tests skip (with the reason) when /usr/bin/chromium is missing; everything
else runs anywhere. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from raftsim.scenario import load_scenario, run_scenario
from raftsim.viz.ui import STATIC_DIR, UiServer, build_ui_app
from raftsim.viz.ui_lessons import load_lessons
from raftsim.viz.ui_runner import SimRunner
from raftsim.viz.ui_session import (
    CONFIG_PATH,
    ReplayDone,
    ReplayPump,
    RunFor,
    RunUntil,
    SessionSpec,
    StepOnce,
    UiSession,
    decode_permalink,
    encode_permalink,
    validate_action,
)
from raftsim.viz.ui_sessions import SessionPool
from raftsim.viz.ui_timetravel import CHECKPOINT_EVERY, TimeMachine

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
#: wall seconds between looks at something that happens on another thread
POLL = 0.02
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

SCENARIO = """
title = "A write, then the leader crashes"
description = "Used by the UI tests."
seed = 4

[cluster]
servers = 3

[[step]]
when = {leader = "any", commit_at_least = 2}
within = 5
as = "old"
say = "$old leads"

[[step]]
write = {key = "k", value = "v", via = "$old"}

[[step]]
crash = "$old"

[[step]]
when = {leader = "any"}
within = 5

[[step]]
expect = {leader_not = "$old", kv = {k = "v"}, eventually = 1}
"""


class Stop(BaseException):
    """Ends a test's own pump."""


def leader_of(session: UiSession) -> str | None:
    return session.cluster.leader()


def elect(session: UiSession, timeout: float = 5.0) -> str:
    deadline = session.now + timeout
    while leader_of(session) is None:
        assert session.now < deadline, "no leader within the deadline"
        session.advance(0.01)
    leader = leader_of(session)
    assert leader is not None
    return leader


@pytest.fixture
def session() -> Iterator[UiSession]:
    s = UiSession(SessionSpec(servers=5, seed=11))
    yield s
    s.close()


# ---------------------------------------------------------------------- serialization

def test_snapshot_is_plain_json_with_what_the_page_draws(session: UiSession) -> None:
    leader = elect(session)
    for k in range(3):
        session.apply({"op": "write", "key": f"k{k}", "value": str(k)})
    session.advance(0.3)
    session.poll_configurations()
    snap = json.loads(json.dumps(session.snapshot()))  # survives JSON unchanged
    assert snap == session.snapshot()
    assert [s["id"] for s in snap["servers"]] == ["s1", "s2", "s3", "s4", "s5"]
    assert snap["leader"] == leader
    roles = [s["role"] for s in snap["servers"]]
    assert roles.count("leader") == 1
    for server in snap["servers"]:
        assert server["status"] == "up"
        assert server["commit"] >= 5  # configuration, no-op, three writes
        indexes = [e[0] for e in server["log"]]
        assert indexes == list(range(1, server["last_index"] + 1))
        for index, term, kind, label, committed in server["log"]:
            assert committed == (index <= server["commit"])
            assert kind in ("c", "n", "g") and isinstance(label, str) and term >= 1
        assert server["log"][0][2] == "g" and server["log"][0][3].startswith("configuration")
        assert server["config"]["voters"] == ["s1", "s2", "s3", "s4", "s5"]
        if server["role"] == "leader":
            assert server["deadline"] is None
        else:
            assert server["deadline"] > snap["t"]
    assert {e[3] for e in snap["servers"][0]["log"]} >= {"put k0=0", "put k2=2"}
    answer = snap["config_answers"][leader]
    assert answer["status"] == 200
    assert [s["id"] for s in answer["servers"]] == ["s1", "s2", "s3", "s4", "s5"]
    assert [s["id"] for s in answer["servers"] if s["leader"]] == [leader]
    assert [a["status"] for a in snap["api_log"]] == [200, 200, 200]
    assert snap["timing"]["latency"] == [0.010, 0.015]
    assert snap["settings"] == {"pre_vote": True, "check_quorum": True}


def test_any_key_can_be_written(session: UiSession) -> None:
    elect(session)
    session.apply({"op": "write", "key": "a b/ü?#%", "value": "v"})
    session.advance(0.2)
    assert session.api_log[-1]["status"] == 200
    leader = session.cluster.servers[session.cluster.leader() or ""]
    assert leader.kv.items["a b/ü?#%"].value == b"v"


def test_the_command_line_takes_the_ui_options() -> None:
    from raftsim.cli import build_parser

    args = build_parser().parse_args(["ui", "--servers", "3", "--seed", "7", "--port", "0",
                                      "--host", "127.0.0.1", "--speed", "0.5"])
    assert (args.servers, args.seed, args.port, args.speed, args.scenario) == (3, 7, 0, 0.5,
                                                                                None)
    assert (args.max_sessions, args.lessons) == (32, None)
    args = build_parser().parse_args(["ui", "--max-sessions", "40", "--lessons", "scenarios"])
    assert (args.max_sessions, args.lessons) == (40, "scenarios")
    for bad in (["ui", "--speed", "500"], ["ui", "--port", "70000"], ["ui", "--seed", "-1"],
                ["ui", "--max-sessions", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_configuration_polls_leave_no_trace(session: UiSession) -> None:
    elect(session)
    before = session.digest()
    session.poll_configurations()
    session.poll_configurations()
    assert session.digest() == before
    assert all(a["status"] == 200 for a in session.config_answers.values())
    assert CONFIG_PATH.endswith("?stale")


def test_messages_in_flight_and_dropped_ones(session: UiSession) -> None:
    leader = elect(session)
    session.advance(0.051)
    snap = session.snapshot()
    kinds = {m["type"] for m in snap["messages"]} | {"AppendEntries"}
    assert kinds <= {"AppendEntries", "AppendEntriesResponse"}
    for m in snap["messages"]:
        assert m["from"] in session.cluster.ids and m["to"] in session.cluster.ids
        assert m["t"] <= snap["t"]
    others = [sid for sid in session.cluster.ids if sid != leader]
    session.apply({"op": "partition", "groups": [[leader], others]})
    session.advance(0.2)
    snap = session.snapshot()
    assert any(d["reason"] == "partition" and d["from"] == leader for d in snap["drops"])
    blocked = {tuple(pair) for pair in snap["blocked"]}
    assert (leader, others[0]) in blocked and (others[0], others[1]) not in blocked


def test_a_crashed_server_shows_what_its_disk_holds(session: UiSession) -> None:
    leader = elect(session)
    session.apply({"op": "write", "key": "a", "value": "1"})
    session.advance(0.2)
    victim = next(sid for sid in session.cluster.ids if sid != leader)
    session.apply({"op": "crash", "server": victim})
    view = next(s for s in session.snapshot()["servers"] if s["id"] == victim)
    assert view["status"] == "crashed" and view["role"] is None and view["deadline"] is None
    assert view["term"] >= 2 and view["last_index"] >= 3 and len(view["log"]) >= 3
    with pytest.raises(ValueError, match="not running"):
        session.apply({"op": "crash", "server": victim})
    session.apply({"op": "restart", "server": victim})
    assert next(s for s in session.snapshot()["servers"] if s["id"] == victim)["status"] == "up"


def test_settings_switch_in_place_for_future_elections(session: UiSession) -> None:
    elect(session)
    session.apply({"op": "settings", "pre_vote": False, "check_quorum": False})
    for server in session.cluster.servers.values():
        assert server.node is not None
        assert not server.node.settings.pre_vote and not server.node.settings.check_quorum
    assert session.snapshot()["settings"] == {"pre_vote": False, "check_quorum": False}
    assert "PreVote is now off" in session.feed.lines[-1]["text"]


def test_the_feed_tells_the_story_as_raftsim_run_does(session: UiSession) -> None:
    leader = elect(session)
    texts = [line["text"] for line in session.feed.lines]
    assert "became LEADER of term 2" in texts
    assert any(line["server"] == leader and line["tone"] == "lead"
               for line in session.feed.lines)
    counts = [line["n"] for line in session.feed.lines]
    assert counts == sorted(counts) and session.feed.since(counts[-2]) == [
        session.feed.lines[-1]]


def test_a_chosen_message_is_dropped_on_its_way_and_replays(session: UiSession) -> None:
    elect(session)
    while not session.board.in_flight:
        session.step()
    message = min(session.board.in_flight.values(), key=lambda m: m["id"])
    session.apply({"op": "drop", "message": message["id"]})
    assert message["id"] not in session.board.in_flight
    assert session.drops_of(message["id"]) == ["chosen"]
    with pytest.raises(ValueError, match="not on its way"):
        session.apply({"op": "drop", "message": message["id"]})
    session.advance(0.2)  # its arrival time passes: it never arrives
    kinds = [r["kind"] for r in session.recorder.records if r.get("id") == message["id"]]
    assert kinds == ["send", "drop"]
    assert session.snapshot()["drops"][-1]["reason"] == "chosen"
    assert any(line["text"].startswith(f"you dropped the {message['type']} "
                                       f"{message['from']} → {message['to']}")
               for line in session.feed.lines)
    replayed = UiSession.from_permalink(session.permalink())
    try:
        assert replayed.digest() == session.digest()
    finally:
        replayed.close()


def test_the_leader_shows_next_and_match_index_per_follower(session: UiSession) -> None:
    leader = elect(session)
    follower = next(sid for sid in session.cluster.ids if sid != leader)
    session.apply({"op": "crash", "server": follower})
    for k in range(3):
        session.apply({"op": "write", "key": f"k{k}", "value": "v"})
    session.advance(0.3)
    view = next(s for s in session.snapshot()["servers"] if s["id"] == leader)
    node = session.cluster.servers[leader].node
    assert node is not None
    assert view["progress"] == {peer: {"next": pr.next, "match": pr.match,
                                       "state": pr.state.value}
                                for peer, pr in node.progress.items() if peer != leader}
    assert view["progress"][follower]["match"] < view["last_index"]
    assert all(p["match"] == view["last_index"] for peer, p in view["progress"].items()
               if peer != follower)
    assert all("progress" not in s for s in session.snapshot()["servers"]
               if s["id"] != leader)


def test_actions_are_checked_before_anything_happens() -> None:
    servers = ["s1", "s2"]
    bad: list[Any] = [
        None, {"op": "explode"}, {"op": "crash"}, {"op": "crash", "server": "s9"},
        {"op": "partition", "groups": [["s1"], ["s1"]]}, {"op": "partition", "groups": []},
        {"op": "write", "key": ""}, {"op": "write", "key": "k", "value": 5},
        {"op": "settings", "pre_vote": 1, "check_quorum": True},
        {"op": "remove", "peer": "s1", "via": "s7"},
        {"op": "drop"}, {"op": "drop", "message": "3"}, {"op": "drop", "message": 0},
        {"op": "drop", "message": True},
    ]
    for action in bad:
        with pytest.raises(ValueError):
            validate_action(action, servers)
    assert validate_action({"op": "write", "key": "x", "value": "1", "junk": 2}, servers) == {
        "op": "write", "key": "x", "value": "1"}


def test_permalinks_refuse_what_is_not_one() -> None:
    for text in ["", "!!!", encode_permalink({"v": 99}),
                 encode_permalink({"v": 1, "actions": [{"op": "heal"}]}),
                 encode_permalink({"v": 1, "actions": [{"t": 2, "op": "heal"},
                                                       {"t": 1, "op": "heal"}]}),
                 encode_permalink({"v": 1, "servers": 0}),
                 encode_permalink({"v": 1, "until": -1})]:
        with pytest.raises(ValueError):
            decode_permalink(text)
    spec, actions, until = decode_permalink(encode_permalink(
        {"v": 1, "servers": 3, "seed": 5, "actions": [{"t": 0.5, "op": "heal"}],
         "until": 0.25}))
    assert spec == SessionSpec(servers=3, seed=5) and until == 0.5
    assert actions == [{"t": 0.5, "op": "heal"}]


# ---------------------------------------------------------------------- determinism

def live_pump(seed: int, script: dict[int, list[dict[str, Any]]], pumps: int):
    """A stand-in for the wall clock: uneven slices, steps and polls at random, and the
    script's actions at given pump calls."""
    rng = random.Random(seed)
    state = {"calls": 0}

    def pump(session: UiSession) -> RunFor | RunUntil | StepOnce:
        calls = state["calls"] = state["calls"] + 1
        if calls > pumps:
            raise Stop()
        for action in script.get(calls, []):
            try:
                session.apply(action)
            except ValueError:
                pass  # e.g. no leader to ask: the page would show the error
        if rng.random() < 0.3:
            session.poll_configurations()
        if rng.random() < 0.1:
            return StepOnce()
        return RunFor(rng.random() * 0.04)

    return pump


def drive(session: UiSession, pump: Any) -> None:
    try:
        session.drive(pump)
    except Stop:
        pass


SCRIPT: dict[int, list[dict[str, Any]]] = {
    20: [{"op": "write", "key": "a", "value": "1"}],
    25: [{"op": "write", "key": "b", "value": "2"}, {"op": "settings", "pre_vote": False,
                                                     "check_quorum": True}],
    40: [{"op": "crash", "server": "s2"}, {"op": "crash", "server": "s3"}],
    60: [{"op": "restart", "server": "s2"}],
    70: [{"op": "partition", "groups": [["s1", "s4"], ["s2", "s3", "s5"]]}],
    90: [{"op": "heal"}, {"op": "pause", "server": "s5"}],
    100: [{"op": "resume", "server": "s5"}, {"op": "restart", "server": "s3"}],
    120: [{"op": "remove", "peer": "s4"}],
    140: [{"op": "transfer", "target": "s5"}],
}


def test_a_permalink_replays_the_same_run() -> None:
    live = UiSession(SessionSpec(servers=5, seed=3))
    drive(live, live_pump(1, SCRIPT, 180))
    link = live.permalink()
    ops = [a["op"] for a in live.actions]
    assert {"write", "crash", "restart", "partition", "remove", "transfer"} <= set(ops)
    digest = live.digest()
    first = UiSession.from_permalink(link)
    second = UiSession.from_permalink(link, number=7)
    try:
        assert first.now == second.now == live.now
        assert first.digest() == second.digest() == digest
        assert first.actions == live.actions
        assert first.snapshot()["servers"] == live.snapshot()["servers"]
        # the replayed session goes on like any other
        first.apply({"op": "write", "key": "after", "value": "x"})
        first.advance(0.5)
    finally:
        for s in (live, first, second):
            s.close()
    quiet = UiSession(SessionSpec(servers=5, seed=3))
    try:
        drive(quiet, live_pump(1, {}, 180))
        assert quiet.digest() != digest  # the actions did change the run
    finally:
        quiet.close()


def test_the_pace_does_not_change_the_run() -> None:
    sessions = [UiSession.replay(SessionSpec(seed=9), [], 2.0),
                UiSession(SessionSpec(seed=9)), UiSession(SessionSpec(seed=9))]
    rng = random.Random(1)
    try:
        sessions[1].advance(0.7)
        sessions[1].advance(0.3)
        sessions[1].advance_to(2.0)
        while sessions[2].now < 1.9:
            if rng.random() < 0.2:
                sessions[2].step()
            else:
                sessions[2].advance(rng.random() * 0.05)
        sessions[2].advance_to(2.0)
        assert [s.now for s in sessions] == [2.0, 2.0, 2.0]
        assert len({s.digest() for s in sessions}) == 1
    finally:
        for s in sessions:
            s.close()


def scenario_digest(session: UiSession, records: int) -> str:
    h = hashlib.sha256()
    for line in list(session.recorder.lines())[:records]:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


@pytest.mark.parametrize("name", ["leader-crash", "minority-partition", "remove-leader",
                                  "rejoin-without-prevote"])
def test_a_scenario_played_at_any_pace_is_the_run_raftsim_run_makes(name: str) -> None:
    path = ROOT / "scenarios" / f"{name}.toml"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    expected = run_scenario(load_scenario(path))
    session = UiSession(SessionSpec(seed=expected.seed, scenario=path.read_text(),
                                    scenario_name=name))
    rng = random.Random(5)

    def pump(s: UiSession) -> RunFor | StepOnce:
        if s.scenario_verdict is not None:
            raise Stop()
        if rng.random() < 0.3:
            s.poll_configurations()
        return StepOnce() if rng.random() < 0.05 else RunFor(rng.random() * 0.03)

    try:
        drive(session, pump)
        assert session.scenario_verdict is not None
        assert ("passed" in session.scenario_verdict) == expected.passed
        assert scenario_digest(session, len(expected.records)) == expected.digest
    finally:
        session.close()


def test_a_scenario_session_with_actions_replays_exactly() -> None:
    spec = SessionSpec(seed=4, scenario=SCENARIO, scenario_name="ui-test")
    live = UiSession(spec)
    drive(live, live_pump(3, {30: [{"op": "write", "key": "mine", "value": "1"}],
                              45: [{"op": "settings", "pre_vote": False,
                                    "check_quorum": False}]}, 70))
    assert [a["op"] for a in live.actions] == ["write", "settings"]
    link, digest, now = live.permalink(), live.digest(), live.now
    live.close()
    spec2, actions, until = decode_permalink(link)
    assert spec2 == spec and until == now
    replay = UiSession(spec2)
    pump = ReplayPump(actions, until)
    with pytest.raises(ReplayDone):
        replay.drive(pump)
    assert pump.digest == digest
    replay.close()


def test_a_lesson_holds_after_each_say_and_back_replays_to_a_stop() -> None:
    path = ROOT / "scenarios" / "leader-crash.toml"
    expected = run_scenario(load_scenario(path))
    says = [r for r in expected.records if r["kind"] == "say"]
    spec = SessionSpec(seed=expected.seed, scenario=path.read_text(),
                       scenario_name="leader-crash", lesson=True)
    live = UiSession(spec)
    held: list[tuple[int, float, str, str]] = []
    rng = random.Random(2)

    def pump(s: UiSession) -> RunFor:
        if s.scenario_verdict is not None:
            raise Stop()
        if s.holding:  # Next, at once
            held.append((s.stops, s.now, s.stop_text, s.digest()))
            with pytest.raises(ValueError, match="waits at its text"):
                s.apply({"op": "heal"})
            return RunFor(0.0)
        return RunFor(rng.random() * 0.03)

    try:
        drive(live, pump)
        assert [h[0] for h in held] == list(range(1, len(says) + 1))
        assert [(round(h[1], 6), h[2]) for h in held] == [(r["t"], r["text"]) for r in says]
        assert live.lesson_stops_total == len(says) >= 2
        # holding ran nothing: the lesson is the run raftsim run makes
        assert scenario_digest(live, len(expected.records)) == expected.digest
        assert live.named_servers("s2 leads; s10 and xs3 do not") == ["s2"]
    finally:
        live.close()
    stop = 2
    replay = UiSession(spec)
    try:
        with pytest.raises(ReplayDone):
            replay.drive(ReplayPump([], 0.0, until_stop=stop))
        assert replay.holding is False and replay.stops == stop
        assert (replay.now, replay.stop_text, replay.digest()) == held[stop - 1][1:]
        assert replay.snapshot()["lesson"]["stop"] == stop
    finally:
        replay.close()

    # an action taken between stops 1 and 2: Back to stop 2 replays it, Back to 1 not
    acting = UiSession(spec)
    at_stop: dict[int, str] = {}

    def act_once(s: UiSession) -> RunFor:
        if s.scenario_verdict is not None or s.stops > 2:
            raise Stop()
        if s.holding:
            at_stop[s.stops] = s.digest()
            return RunFor(0.0)
        if s.stops == 1 and not s.actions:
            s.apply({"op": "write", "key": "mine", "value": "1"})
        return RunFor(0.01)

    try:
        drive(acting, act_once)
        assert acting.action_stops == [1]
        assert at_stop[2] != held[1][3]  # the write changed the run
        for stop in (1, 2):
            actions = [a for a, before in zip(acting.actions, acting.action_stops,
                                              strict=True) if before < stop]
            back = UiSession(spec)
            try:
                with pytest.raises(ReplayDone):
                    back.drive(ReplayPump(actions, 0.0, until_stop=stop))
                assert back.digest() == at_stop[stop]
            finally:
                back.close()
    finally:
        acting.close()


def test_time_travel_shows_the_exact_past_within_a_second_of_a_5_minute_session() -> None:
    spec = SessionSpec(servers=5, seed=3)
    live = UiSession(spec)
    script = [(1.0, {"op": "write", "key": "a", "value": "1"}),
              (2.5, {"op": "crash", "server": "s2"}),
              (4.0, {"op": "partition", "groups": [["s1", "s3"], ["s2", "s4", "s5"]]}),
              (9.0, {"op": "heal"}), (12.0, {"op": "restart", "server": "s2"}),
              (15.0, {"op": "write", "key": "b", "value": "2"})]
    try:
        for when, action in script:
            live.advance_to(when)
            live.apply(action)
        live.advance_to(20.0)
        actions = list(live.actions)
    finally:
        live.close()
    machine = TimeMachine(spec)
    try:
        machine.feed(actions, 300.0)  # five minutes, the last 280 s without actions
        assert machine.show(300.0)["t"] == 300.0  # once the machine has caught up
        took = {}
        for t in (299.9, 7.77, 150.3, 61.7, 17.25, 233.3, 0.5):
            started = time.perf_counter()
            past = machine.show(t)
            took[t] = time.perf_counter() - started
            assert past["t"] == t and past["snapshot"]["t"] == t
            assert 0 <= t - past["checkpoint"] <= CHECKPOINT_EVERY
        assert max(took.values()) < 1.0, took
        for t in (7.77, 17.25):  # exactly what a replay from t=0 shows
            reference = UiSession.replay(spec, [a for a in actions if a["t"] <= t], t)
            try:
                reference.poll_configurations()
                assert machine.show(t)["snapshot"] == json.loads(json.dumps(
                    reference.snapshot()))
            finally:
                reference.close()
    finally:
        machine.close()


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def test_time_travel_thins_its_checkpoints_and_leaves_no_process_behind() -> None:
    spec = SessionSpec(servers=3, seed=6)
    machine = TimeMachine(spec, every=0.5, max_checkpoints=4)
    try:
        # checkpoints at 0, 0.5, 1, ... thinned whenever there are five: 0, 4 and 8 stay
        machine.feed([], 12.0)
        assert machine.show(12.0)["t"] == 12.0
        assert machine.pid is not None
        holders = children_of(machine.pid)
        assert len(holders) == 3
        past = machine.show(11.9)
        assert past["checkpoint"] == 8.0 and past["t"] == 11.9
        reference = UiSession.replay(spec, [], 11.9)
        try:
            reference.poll_configurations()
            assert past["snapshot"] == json.loads(json.dumps(reference.snapshot()))
        finally:
            reference.close()
    finally:
        machine.close()
    assert not any(Path(f"/proc/{pid}").exists() for pid in holders)


def test_the_lessons_are_the_scenario_files_tour_first(tmp_path: Path) -> None:
    shipped = load_lessons(ROOT / "scenarios")
    assert [lesson.name for lesson in shipped][:3] == ["tour", "first-election",
                                                       "leader-crash"]
    assert {lesson.name for lesson in shipped} == {
        p.stem for p in (ROOT / "scenarios").glob("*.toml")}
    tour = shipped[0]
    assert tour.summary()["title"] == load_scenario(ROOT / "scenarios" / "tour.toml").title
    assert tour.stops == tour.text.count("say =") and "\n" not in tour.summary()["description"]
    (tmp_path / "zz-mine.toml").write_text(SCENARIO)
    (tmp_path / "broken.toml").write_text("title = [not a scenario")
    (tmp_path / "tour.toml").write_text(tour.text)
    assert [lesson.name for lesson in load_lessons(tmp_path)] == ["tour", "zz-mine"]
    assert load_lessons(None) == []


def test_a_bad_scenario_says_why() -> None:
    with pytest.raises(ValueError, match="title"):
        UiSession(SessionSpec(scenario="seed = 1\n[[step]]\nsay = 'x'\n"))
    with pytest.raises(ValueError, match="TOML"):
        UiSession(SessionSpec(scenario="this is [not toml"))


# ---------------------------------------------------------------------- the application

def pool_of(loop: asyncio.AbstractEventLoop, spec: SessionSpec, **options: Any
            ) -> SessionPool:
    return SessionPool(loop, lambda publish, playing: SimRunner(spec, publish, speed=50,
                                                                playing=playing), **options)


async def test_the_application_serves_the_page_and_speaks_websocket() -> None:
    loop = asyncio.get_running_loop()
    pool = pool_of(loop, SessionSpec(servers=3, seed=2))
    client = TestClient(TestServer(build_ui_app(pool)))
    await client.start_server()
    try:
        page = await client.get("/")
        text = await page.text()
        assert page.status == 200 and '<svg id="ring"' in text and "/static/ui.js" in text
        for name in ("ui.js", "ui.css"):
            response = await client.get(f"/static/{name}")
            assert response.status == 200 and await response.read() == (
                STATIC_DIR / name).read_bytes()
        assert (await client.get("/static/../ui.py")).status == 404
        assert (await client.get("/ws", headers={"Origin": "http://evil.example"})).status == 403
        ws = await client.ws_connect("/ws")
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["type"] == "hello" and hello["resumed"] is False
        frame = json.loads((await ws.receive(timeout=10)).data)
        assert frame["type"] == "state" and frame["reset"] is True
        assert [s["id"] for s in frame["servers"]] == ["s1", "s2", "s3"]
        deadline = loop.time() + 20
        while frame.get("leader") is None:
            assert loop.time() < deadline, "no leader reached the page"
            frame = json.loads((await ws.receive(timeout=10)).data)
        await ws.send_json({"req": 1, "op": "action",
                            "action": {"op": "crash", "server": frame["leader"]}})
        await ws.send_json({"req": 2, "op": "action", "action": {"op": "nonsense"}})
        await ws.send_json({"req": 3, "op": "permalink"})
        replies: dict[int, dict[str, Any]] = {}
        while len(replies) < 3:
            assert loop.time() < deadline, "no replies"
            message = json.loads((await ws.receive(timeout=10)).data)
            if message["type"] == "reply":
                replies[message["req"]] = message
        assert replies[1]["ok"] and replies[1]["action"]["op"] == "crash"
        assert not replies[2]["ok"] and "unknown action" in replies[2]["error"]
        spec, actions, _ = decode_permalink(replies[3]["permalink"])
        assert spec.seed == 2 and actions[0]["op"] == "crash"
        await ws.close()
    finally:
        await client.close()
    assert len(pool) == 0  # the sessions stop with the application


async def receive_json(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of ``kind`` (frames and replies in between are skipped)."""
    while True:
        message = json.loads((await ws.receive(timeout=10)).data)
        if message["type"] == kind:
            return dict(message)


async def test_every_page_gets_a_session_of_its_own_and_a_full_server_says_so() -> None:
    loop = asyncio.get_running_loop()
    pool = pool_of(loop, SessionSpec(servers=3, seed=2), limit=2, idle_timeout=0.5)
    client = TestClient(TestServer(build_ui_app(pool)))
    await client.start_server()
    try:
        first = await client.ws_connect("/ws")
        second = await client.ws_connect("/ws?start=paused")
        a = await receive_json(first, "hello")
        b = await receive_json(second, "hello")
        assert a["session"] != b["session"] and len(pool) == 2
        assert pool.visits[a["session"]].runner is not pool.visits[b["session"]].runner
        assert pool.visits[a["session"]].runner.playing
        assert not pool.visits[b["session"]].runner.playing  # start=paused
        frame = await receive_json(second, "state")
        assert frame["t"] == 0.0 and frame["leader"] is None and not frame["playing"]
        # a third page while both are watched: told why, and nothing else changes
        third = await client.ws_connect("/ws")
        full = await receive_json(third, "full")
        assert "the most it allows" in full["error"] and "--max-sessions 2" in full["error"]
        assert set(pool.visits) == {a["session"], b["session"]}
        # a page that reconnects gets its own session back
        await second.close()
        again = await client.ws_connect(f"/ws?resume={b['session']}")
        hello = await receive_json(again, "hello")
        assert hello == {**b, "resumed": True}
        # an unwatched session is reclaimed, and a newcomer then fits
        await first.close()
        deadline = loop.time() + 10
        while a["session"] in pool.visits:
            assert loop.time() < deadline, "the unwatched session was never reclaimed"
            await asyncio.sleep(POLL)
        fourth = await client.ws_connect("/ws")
        assert (await receive_json(fourth, "hello"))["session"] not in (a["session"],
                                                                       b["session"])
        assert pool.reclaimed == 1 and b["session"] in pool.visits
        for ws in (third, again, fourth):
            await ws.close()
    finally:
        await client.close()


# ---------------------------------------------------------------------- in the browser

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for every browser test of this module (starting one costs a second)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} "
                    "(apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Any, errors: list[str], context: Any = None) -> Any:
    """A page in ``context`` (a new browser context of its own when None) whose console
    errors land in ``errors``."""
    owner = context if context is not None else browser.new_context(
        viewport={"width": 1280, "height": 800})
    page = owner.new_page()
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return page


def ring_leaders(page: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.eval_on_selector_all(
        "#ring .srv.role-leader",
        "els => els.map(e => ({id: e.dataset.id, term: Number(e.dataset.term)}))")
    return result


def set_speed(page: Any, index: int) -> None:
    page.eval_on_selector("#speed", "(el, i) => { el.value = String(i);"
                          " el.dispatchEvent(new Event('input')); }", index)
    page.wait_for_function("i => document.querySelector('#speed-out').textContent"
                           " === ['1/100×','1/50×','1/20×','1/10×','1/5×','1/2×','1×','2×','5×',"
                           "'10×','20×','50×','100×'][i]", arg=index, timeout=5_000)


def docs_screenshot(page: Any) -> None:
    """docs/ui.png (RAFTSIM_WRITE_DOCS_SCREENSHOT=1): the README's picture, at the
    default 1/20x with a write on its way, so messages are in flight."""
    set_speed(page, 2)
    page.fill("#kv-key", "greeting")
    page.fill("#kv-value", "hello")
    page.click("#write")
    page.wait_for_selector("#responses li:has-text('/v1/kv/greeting')", timeout=10_000)
    # entries on their way to some followers while others already answer
    page.wait_for_function(
        "[...document.querySelectorAll('#ring .msg.req.t-append text')]"
        ".filter(t => t.textContent === '1').length >= 2"
        " && document.querySelectorAll('#ring .msg.rep text.yes').length >= 1",
        timeout=10_000, polling="raf")
    page.screenshot(path=str(ROOT / "docs" / "ui.png"))
    set_speed(page, 10)


def test_the_page_shows_elections_crashes_and_membership_changes(tmp_path: Path,
                                                                  browser: Any) -> None:
    errors: list[str] = []
    with UiServer(SessionSpec(servers=5, seed=1), speed=20, playing=False) as server:
        page = open_page(browser, errors)
        try:
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('#ring .srv').length === 5",
                                   timeout=10_000)
            assert page.eval_on_selector_all("#ring .srv", "els => els.map(e => e.dataset.id)"
                                             ) == ["s1", "s2", "s3", "s4", "s5"]
            assert page.text_content("#clock") == "0.000" and ring_leaders(page) == []
            page.click("#play")
            # within a few virtual seconds (20x: a fraction of a wall second), one leader
            page.wait_for_function(
                "document.querySelectorAll('#ring .srv.role-leader').length === 1",
                timeout=10_000)
            assert len(ring_leaders(page)) == 1
            assert float(page.text_content("#clock") or "inf") < 5.0  # virtual seconds
            for _ in range(3):
                page.click("#write")
            page.wait_for_function(
                "document.querySelectorAll('#responses li[data-status=\"200\"]').length === 3",
                timeout=10_000)
            page.screenshot(path=str(tmp_path / "1-leader.png"))
            if os.environ.get("RAFTSIM_WRITE_DOCS_SCREENSHOT"):
                docs_screenshot(page)
            old = ring_leaders(page)[0]

            page.click(f"#servers button[data-act=crash][data-id={old['id']}]")
            page.wait_for_function(
                f"document.querySelector('#ring .srv[data-id={old['id']}]')"
                ".classList.contains('status-crashed')", timeout=10_000)
            page.wait_for_function(
                "(() => { const l = document.querySelectorAll('#ring .srv.role-leader');"
                f" return l.length === 1 && Number(l[0].dataset.term) > {old['term']}; }})()",
                timeout=15_000)
            new = ring_leaders(page)[0]
            assert new["id"] != old["id"] and new["term"] > old["term"]
            page.screenshot(path=str(tmp_path / "2-new-leader.png"))

            peer = next(sid for sid in ["s1", "s2", "s3", "s4", "s5"]
                        if sid not in (old["id"], new["id"]))
            page.select_option("#peer", peer)
            page.click("#remove-peer")
            page.wait_for_function(
                "(() => { const row = document.querySelector("
                f"'#configs tr[data-id={new['id']}]');"
                " return row && row.querySelector('.chip') &&"
                f" !row.querySelector('.chip[data-id={peer}]'); }})()", timeout=15_000)
            chips = page.eval_on_selector_all(
                f"#configs tr[data-id={new['id']}] .chip", "els => els.map(e => e.dataset.id)")
            assert peer not in chips and new["id"] in chips and len(chips) == 4
            page.wait_for_selector("#responses li[data-status='200'] >> text=DELETE",
                                   timeout=10_000)
            page.screenshot(path=str(tmp_path / "3-peer-removed.png"))
        finally:
            page.context.close()
    assert errors == []
    for name in ("1-leader.png", "2-new-leader.png", "3-peer-removed.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_the_page_pauses_steps_replays_links_and_plays_scenarios(tmp_path: Path,
                                                                  browser: Any) -> None:
    errors: list[str] = []
    with UiServer(SessionSpec(servers=3, seed=5), speed=20) as server:
        page = open_page(browser, errors)
        try:
            page.goto(server.url)
            page.wait_for_function(
                "document.querySelectorAll('#ring .srv.role-leader').length === 1",
                timeout=10_000)
            page.click("#write")
            page.wait_for_selector("#responses li[data-status='200']", timeout=10_000)
            page.click("#play")  # pause
            page.wait_for_function("document.querySelector('#play').textContent.includes('Play')",
                                   timeout=5_000)
            before = page.get_attribute("#clock", "data-t")
            page.click("#step")
            page.wait_for_function(f"document.querySelector('#clock').dataset.t !== '{before}'",
                                   timeout=5_000)
            assert float(page.get_attribute("#clock", "data-t") or 0) > float(before or 0)
            page.click("#permalink")
            page.wait_for_function("!!document.querySelector('#permalink').dataset.url",
                                   timeout=5_000)
            url = page.get_attribute("#permalink", "data-url")
            assert url is not None and "#session=" in url
            shown = page.get_attribute("#clock", "data-t")
            log_before = page.inner_html("#log")

            other = open_page(browser, errors, page.context)
            other.goto(url)
            other.wait_for_function(
                f"document.querySelector('#clock').dataset.t === '{shown}'"
                " && document.querySelector('#play').textContent.includes('Play')",
                timeout=15_000)
            assert other.inner_html("#log") == log_before
            other.screenshot(path=str(tmp_path / "4-replayed.png"))
            other.close()

            scenario = tmp_path / "ui-test.toml"
            scenario.write_text(SCENARIO)
            page.set_input_files("#scenario-file", str(scenario))
            page.wait_for_function(
                "document.querySelector('#scenario-title').textContent.includes('leader "
                "crashes')", timeout=10_000)
            page.wait_for_function(
                "document.querySelector('#scenario-verdict').textContent.includes('passed')",
                timeout=20_000)
            page.screenshot(path=str(tmp_path / "5-scenario.png"))
        finally:
            page.context.close()
    assert errors == []


def session_of(server: UiServer, page: Any) -> Any:
    """The server-side session behind a page (by the token the page was given)."""
    token = page.get_attribute("body", "data-session")
    assert server.pool is not None and token in server.pool.visits
    return server.pool.visits[token].runner


def test_every_tab_has_a_cluster_of_its_own(browser: Any) -> None:
    errors: list[str] = []
    with UiServer(SessionSpec(servers=5, seed=1), speed=0.05) as server:
        a = open_page(browser, errors)
        b = open_page(browser, errors)  # another browser context: another visitor
        try:
            a.goto(server.url)
            a.wait_for_function("document.querySelectorAll('#ring .srv').length === 5",
                                timeout=10_000)
            set_speed(a, 9)  # 10x
            a.fill("#seed", "7")
            a.select_option("#nservers", "3")
            a.click("#reset")
            a.wait_for_function("document.querySelectorAll('#ring .srv').length === 3"
                                " && document.querySelectorAll('#ring .srv.role-leader')"
                                ".length === 1", timeout=10_000)
            assert float(a.get_attribute("#clock", "data-t") or 0) > 0.15

            # a newcomer starts from t=0, before the first election, at the default pace
            b.goto(server.url)
            b.wait_for_function("document.querySelector('#clock').dataset.t !== undefined"
                                " && document.querySelectorAll('#ring .srv').length === 5",
                                timeout=10_000)
            assert float(b.get_attribute("#clock", "data-t") or "inf") < 0.15
            assert ring_leaders(b) == []
            assert b.text_content("#speed-out") == "1/20×"
            assert a.text_content("#speed-out") == "10×"
            runner_a, runner_b = session_of(server, a), session_of(server, b)
            assert runner_a is not runner_b
            assert (runner_a.session.spec.seed, runner_b.session.spec.seed) == (7, 1)

            set_speed(b, 8)  # 5x, for b only
            b.wait_for_function("document.querySelectorAll('#ring .srv.role-leader')"
                                ".length === 1", timeout=10_000)
            victim = ring_leaders(b)[0]["id"]
            b.click(f"#servers button[data-act=crash][data-id={victim}]")
            b.wait_for_selector(f"#ring .srv.status-crashed[data-id={victim}]",
                                timeout=10_000)
            assert a.text_content("#speed-out") == "10×" and runner_a.speed == 10
            assert runner_b.speed == 5
            assert a.query_selector("#ring .srv.status-crashed") is None
            assert [x["op"] for x in runner_a.session.actions] == []
            assert [x["op"] for x in runner_b.session.actions] == ["crash"]

            # a permalink of a's session, opened in a third tab (b's context)
            a.click("#permalink")
            a.wait_for_function("!!document.querySelector('#permalink').dataset.url",
                                timeout=5_000)
            url = a.get_attribute("#permalink", "data-url")
            before = {name: (r.session.number, list(r.session.actions), r.speed)
                      for name, r in (("a", runner_a), ("b", runner_b))}
            c = open_page(browser, errors, b.context)
            c.goto(url)
            c.wait_for_function("document.querySelectorAll('#ring .srv').length === 3"
                                " && document.querySelector('#play').textContent"
                                ".includes('Play')", timeout=15_000)
            runner_c = session_of(server, c)
            assert runner_c not in (runner_a, runner_b)
            assert runner_c.session.spec.seed == 7
            after = {name: (r.session.number, list(r.session.actions), r.speed)
                     for name, r in (("a", runner_a), ("b", runner_b))}
            assert after == before
            assert session_of(server, a) is runner_a and session_of(server, b) is runner_b
            assert len(b.query_selector_all("#ring .srv")) == 5
            assert b.query_selector(f"#ring .srv.status-crashed[data-id={victim}]")
            assert server.pool is not None and len(server.pool) == 3
        finally:
            a.context.close()
            b.context.close()
    assert errors == []


def pause(page: Any) -> None:
    page.click("#play")
    page.wait_for_function("document.querySelector('#play').textContent.includes('Play')",
                           timeout=5_000)


def test_the_raftscope_controls_drop_send_to_and_show_progress(browser: Any) -> None:
    errors: list[str] = []
    with UiServer(SessionSpec(servers=5, seed=3), speed=20) as server:
        page = open_page(browser, errors)
        try:
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('#ring .srv.role-leader')"
                                   ".length === 1", timeout=10_000)
            runner = session_of(server, page)
            leader = ring_leaders(page)[0]["id"]
            others = [sid for sid in ["s1", "s2", "s3", "s4", "s5"] if sid != leader]
            lagging, chosen = others[0], others[1]

            # a client request to a chosen server: a follower, which forwards it
            page.click(f"#servers button[data-act=crash][data-id={lagging}]")
            page.select_option("#kv-via", chosen)
            page.fill("#kv-key", "via")
            page.fill("#kv-value", chosen)
            page.click("#write")
            page.wait_for_selector(f"#responses li[data-status='200']:has-text('→ {chosen}')",
                                   timeout=10_000)
            pause(page)
            session = runner.session
            assert session.actions[-1] == {"t": session.actions[-1]["t"], "op": "write",
                                           "key": "via", "value": chosen, "via": chosen}
            api = [r for r in session.recorder.records if r["kind"] == "api"]
            assert (api[-1]["server"], api[-1]["status"]) == (chosen, 200)
            assert session.cluster.leader() == leader != chosen
            for sid in (leader, chosen):
                labels = {e[3]: e[4] for e in page.eval_on_selector_all(
                    f"#log tr[data-id={sid}] i.cell[data-index]",
                    "els => els.map(e => [0, 0, 0, e.title.split(': ')[1].split(' (')[0],"
                    " e.classList.contains('committed')])")}
                assert labels.get(f"put via={chosen}") is True

            # nextIndex / matchIndex on the leader, per follower, as the core has them
            node = session.cluster.servers[leader].node
            assert node is not None
            shown = {sid: page.eval_on_selector(
                f"#servers tr[data-id={sid}] td.progress",
                "e => [Number(e.dataset.next), Number(e.dataset.match)]") for sid in others}
            assert shown == {sid: [node.progress[sid].next, node.progress[sid].match]
                             for sid in others}
            assert shown[lagging][1] < shown[chosen][1]  # the crashed one fell behind
            assert page.text_content(f"#servers tr[data-id={leader}] td.progress") == "leads"

            # drop a chosen message in flight: step until one is on its way, click it
            deadline = 50
            while not page.query_selector_all("#ring .msg[data-id]"):
                deadline -= 1
                assert deadline, "no message went on its way"
                before = page.get_attribute("#clock", "data-t")
                page.click("#step")
                page.wait_for_function(
                    f"document.querySelector('#clock').dataset.t !== '{before}'",
                    timeout=5_000)
            target = page.query_selector_all("#ring .msg[data-id]")[-1]
            message = int(target.get_attribute("data-id") or 0)
            target.click()
            page.wait_for_function(f"!document.querySelector('#ring .msg[data-id=\"{message}\"]')",
                                   timeout=5_000)
            page.wait_for_selector("#drops .drop", timeout=5_000)
            assert session.actions[-1]["op"] == "drop"
            assert session.actions[-1]["message"] == message
            assert session.drops_of(message) == ["chosen"]
            page.click("#play")
            page.wait_for_function("Number(document.querySelector('#clock').dataset.t) > "
                                   f"{session.now + 0.1}", timeout=10_000)
            pause(page)
            assert [r["kind"] for r in session.recorder.records
                    if r.get("id") == message] == ["send", "drop"]
        finally:
            page.context.close()
    assert errors == []


def tour_says() -> list[str]:
    """The tour's explanations as ``raftsim run`` tells them (run on a thread of its
    own: Playwright's loop owns this one)."""
    def run() -> list[str]:
        expected = run_scenario(load_scenario(ROOT / "scenarios" / "tour.toml"))
        return [str(r["text"]) for r in expected.records if r["kind"] == "say"]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def named_in(text: str, ids: list[str]) -> list[str]:
    return [sid for sid in ids if re.search(rf"(?<![\w.-]){sid}(?![\w-])", text)]


def lesson_stop(page: Any, stop: int) -> str:
    """Wait until the lesson holds at ``stop``; its text."""
    page.wait_for_function(
        f"(() => {{ const b = document.querySelector('#lesson-box');"
        f" return !b.hidden && b.dataset.stop === '{stop}' && b.dataset.holding === 'yes'"
        " && document.querySelector('#play').textContent.includes('Play'); })()",
        timeout=15_000)
    return page.text_content("#lesson-text") or ""


def test_the_page_opens_on_lessons_that_stop_at_each_explanation(browser: Any) -> None:
    lessons = load_lessons(ROOT / "scenarios")
    assert lessons[0].name == "tour"
    says = tour_says()
    ids = ["s1", "s2", "s3", "s4", "s5"]
    errors: list[str] = []
    with UiServer(SessionSpec(servers=5, seed=1), speed=20, lessons=lessons) as server:
        page = open_page(browser, errors)
        try:
            page.goto(server.url)
            page.wait_for_selector("#lessons:not([hidden]) #lesson-list button",
                                   timeout=10_000)
            titles = page.eval_on_selector_all("#lesson-list .lt",
                                               "els => els.map(e => e.textContent)")
            assert titles == [lesson.title for lesson in lessons]
            assert len(titles) == len(list((ROOT / "scenarios").glob("*.toml")))
            # behind the list, the visitor's own cluster waits at t=0
            page.wait_for_function("document.querySelector('#clock').dataset.t === '0'",
                                   timeout=10_000)
            assert not session_of(server, page).playing
            page.click("#lesson-list button[data-lesson=tour]")
            assert page.is_hidden("#lessons")

            shown = {}
            for stop in (1, 2, 3):
                if stop > 1:
                    page.click("#lesson-next")
                text = lesson_stop(page, stop)
                assert text == says[stop - 1]
                named = page.eval_on_selector_all("#ring .srv.named",
                                                  "els => els.map(e => e.dataset.id)")
                assert named == named_in(text, ids)
                shown[stop] = (page.get_attribute("#clock", "data-t"), page.inner_html("#log"))
                if stop == 2 and os.environ.get("RAFTSIM_WRITE_DOCS_SCREENSHOT"):
                    page.screenshot(path=str(ROOT / "docs" / "ui-lesson.png"))
            assert shown[2][0] != shown[1][0]  # time passed between the stops
            assert any(named_in(text, ids) for text in says[:3])  # something was ringed
            assert page.text_content("#lesson-stop") == f"3 of {lessons[0].stops}"

            page.click("#lesson-back")  # a fresh replay of the tour, paused at stop 2
            assert lesson_stop(page, 2) == says[1]
            assert (page.get_attribute("#clock", "data-t"), page.inner_html("#log")) == shown[2]
            page.click("#lesson-next")
            assert lesson_stop(page, 3) == says[2]
            assert (page.get_attribute("#clock", "data-t"), page.inner_html("#log")) == shown[3]
        finally:
            page.context.close()
    assert errors == []


def replayed_servers(spec: SessionSpec, actions: list[dict[str, Any]], t: float
                     ) -> list[dict[str, Any]]:
    """Each server's role, term and commit index at ``t`` in a fresh replay (on a
    thread of its own: Playwright's loop owns this one)."""
    def run() -> list[dict[str, Any]]:
        session = UiSession.replay(spec, [a for a in actions if a["t"] <= t], t)
        try:
            return [{"id": s["id"], "role": s["role"] or "crashed", "term": s["term"],
                     "commit": s["commit"]} for s in session.snapshot()["servers"]]
        finally:
            session.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_the_history_slider_shows_an_earlier_moment_exactly(browser: Any) -> None:
    errors: list[str] = []
    spec = SessionSpec(servers=5, seed=2)
    with UiServer(spec, speed=20) as server:
        page = open_page(browser, errors)
        try:
            page.goto(server.url)
            page.wait_for_function("document.querySelectorAll('#ring .srv.role-leader')"
                                   ".length === 1", timeout=10_000)
            old = ring_leaders(page)[0]["id"]
            page.click(f"#servers button[data-act=crash][data-id={old}]")
            page.wait_for_function(
                "(() => { const l = document.querySelectorAll('#ring .srv.role-leader');"
                f" return l.length === 1 && l[0].dataset.id !== '{old}'; }})()",
                timeout=15_000)
            pause(page)
            runner = session_of(server, page)
            now = runner.session.now
            crash_at = runner.session.actions[0]["t"]
            when = round(crash_at - 0.0005, 4)  # just before the crash: old still leads
            page.eval_on_selector("#history", "(el, t) => { el.value = String(t);"
                                  " el.dispatchEvent(new Event('input')); }", when)
            page.wait_for_function(f"document.body.dataset.travel === '{when}'",
                                   timeout=10_000)
            assert float(page.get_attribute("#clock", "data-t") or 0) == when
            rows = page.eval_on_selector_all(
                "#servers tbody tr", "trs => trs.map(tr => ({id: tr.dataset.id,"
                " role: tr.dataset.role, term: Number(tr.querySelector('.term').textContent),"
                " commit: Number(tr.querySelector('.commit').textContent.split('/')[0])}))")
            assert rows == replayed_servers(spec, list(runner.session.actions), when)
            assert [r["id"] for r in rows if r["role"] == "leader"] == [old]
            assert runner.session.now == now  # the present stays where it was
            page.click("#history-now")
            page.wait_for_function("document.body.dataset.travel === ''", timeout=10_000)
            assert float(page.get_attribute("#clock", "data-t") or 0) == now
            assert ring_leaders(page)[0]["id"] != old
        finally:
            page.context.close()
    assert errors == []

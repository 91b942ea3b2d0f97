"""The linearizability checker: hand-written histories with known answers, histories
generated from a real concurrent execution of the register (always linearizable) and
their mutations (never), and the reduced history and drawing a violation comes with."""

from __future__ import annotations

import html
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftsim.check.linearizability import (
    Event,
    LinearizabilityResult,
    Operation,
    OpName,
    check_history,
    check_operations,
    operations_from_events,
    render_history_html,
)


def invoke(client: str, f: OpName, value: object = None, key: str = "x") -> Event:
    return Event("invoke", client, f, key, value)


def ok(client: str, f: OpName, value: object = None, key: str = "x") -> Event:
    return Event("ok", client, f, key, value)


def fail(client: str, f: OpName, key: str = "x") -> Event:
    return Event("fail", client, f, key)


def info(client: str, f: OpName, key: str = "x") -> Event:
    return Event("info", client, f, key)


def write(client: str, value: str, key: str = "x") -> list[Event]:
    return [invoke(client, "write", value, key), ok(client, "write", value, key)]


def read(client: str, value: str | None, key: str = "x") -> list[Event]:
    return [invoke(client, "read", None, key), ok(client, "read", value, key)]


def verdict(events: list[Event]) -> str:
    return check_history(events).verdict


# --- hand-written histories --------------------------------------------------------------


def test_stale_read_after_a_completed_write_is_a_violation() -> None:
    result = check_history(write("c1", "1") + write("c1", "2") + read("c2", "1"))
    assert result.verdict == "violation"
    assert result.key == "x"


def test_violation_message_names_the_stale_read_and_the_write_it_missed() -> None:
    result = check_history(write("c1", "1") + write("c1", "2") + read("c2", "1"))
    assert result.message == (
        'key "x": no linearization; read by c2 returned "1" after write "2" by c1 completed'
    )


@pytest.mark.parametrize("seen", ["1", "2"], ids=["old-value", "new-value"])
def test_read_overlapping_a_write_may_see_the_old_or_the_new_value(seen: str) -> None:
    history = write("c1", "1") + [
        invoke("c1", "write", "2"),
        invoke("c2", "read"),
        ok("c2", "read", seen),
        ok("c1", "write", "2"),
    ]
    assert verdict(history) == "ok"


def test_concurrent_writes_may_take_effect_in_either_order() -> None:
    concurrent = [invoke("c1", "write", "1"), invoke("c2", "write", "2"),
                  ok("c1", "write", "1"), ok("c2", "write", "2")]
    assert verdict(concurrent + read("c3", "1")) == "ok"
    assert verdict(concurrent + read("c3", "2")) == "ok"
    assert verdict(concurrent + read("c3", "1") + read("c3", "2")) == "violation"


def test_read_of_a_value_never_written_is_a_violation() -> None:
    result = check_history(write("c1", "1") + read("c2", "7"))
    assert result.verdict == "violation"
    assert [op.label for op in result.history] == ['read -> "7"']
    assert "no write in the history produced" in result.message


def test_read_of_an_absent_key_returns_none() -> None:
    assert verdict(read("c1", None) + write("c1", "1") + read("c1", "1")) == "ok"


def test_delete_makes_the_key_absent_again() -> None:
    deleted = write("c1", "1") + [invoke("c1", "delete"), ok("c1", "delete")]
    assert verdict(deleted + read("c2", None)) == "ok"
    assert verdict(deleted + read("c2", "1")) == "violation"


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (write("c1", "1") + [invoke("c2", "cas", ("1", "2")), ok("c2", "cas", True)]
         + read("c1", "2"), "ok"),
        (write("c1", "1") + [invoke("c2", "cas", ("1", "2")), ok("c2", "cas", True)]
         + read("c1", "1"), "violation"),
        (write("c1", "1") + [invoke("c2", "cas", ("9", "2")), ok("c2", "cas", False)]
         + read("c1", "1"), "ok"),
        (write("c1", "1") + [invoke("c2", "cas", ("9", "2")), ok("c2", "cas", True)],
         "violation"),
        (write("c1", "1") + [invoke("c2", "cas", ("1", "2")), ok("c2", "cas", False)],
         "violation"),
        ([invoke("c2", "cas", (None, "2")), ok("c2", "cas", True)] + read("c1", "2"), "ok"),
        (write("c1", "1") + [invoke("c2", "cas", (None, "2")), ok("c2", "cas", True)],
         "violation"),
    ],
    ids=[
        "swap-when-current-matches",
        "swap-reported-but-value-unchanged",
        "no-swap-when-current-differs",
        "swap-reported-when-current-differs",
        "no-swap-reported-when-current-matches",
        "expected-none-swaps-an-absent-key",
        "expected-none-does-not-swap-a-present-key",
    ],
)
def test_cas_swaps_if_and_only_if_the_current_value_matches(
    history: list[Event], expected: str
) -> None:
    assert verdict(history) == expected


def test_info_write_may_have_taken_effect() -> None:
    history = [invoke("c1", "write", "1"), info("c1", "write")] + read("c2", "1")
    assert verdict(history) == "ok"


def test_info_write_may_never_take_effect() -> None:
    history = [invoke("c1", "write", "1"), info("c1", "write")] + read("c2", None)
    assert verdict(history) == "ok"


def test_info_write_may_take_effect_long_after_it_was_reported() -> None:
    history = [invoke("c1", "write", "1"), info("c1", "write")]
    assert verdict(history + read("c2", None) + read("c2", "1")) == "ok"


def test_info_write_seen_and_then_unseen_is_a_violation() -> None:
    history = [invoke("c1", "write", "1"), info("c1", "write")]
    result = check_history(history + read("c2", "1") + read("c2", None))
    assert result.verdict == "violation"
    assert result.message.endswith('read by c2 returned absent after a read by c2 had returned "1"')


@pytest.mark.parametrize("seen", ["1", "2"])
def test_info_cas_may_or_may_not_have_swapped(seen: str) -> None:
    """A CAS on a read version (the fuzz clients' ``?cas=N``) whose answer never came."""
    history = write("c1", "1") + [invoke("c2", "cas", ("1", "2")), info("c2", "cas")]
    assert verdict(history + read("c3", seen)) == "ok"


def test_info_cas_cannot_swap_from_a_value_the_key_did_not_hold() -> None:
    history = write("c1", "1") + [invoke("c2", "cas", ("9", "2")), info("c2", "cas")]
    assert verdict(history + read("c3", "2")) == "violation"


def test_info_cas_that_swapped_stays_swapped() -> None:
    history = write("c1", "1") + [invoke("c2", "cas", ("1", "2")), info("c2", "cas")]
    assert verdict(history + read("c3", "2") + read("c3", "1")) == "violation"


@pytest.mark.parametrize("seen", ["1", None])
def test_info_delete_may_or_may_not_have_happened(seen: str | None) -> None:
    history = write("c1", "1") + [invoke("c2", "delete"), info("c2", "delete")]
    assert verdict(history + read("c3", seen)) == "ok"


def test_info_delete_happens_once() -> None:
    history = write("c1", "1") + [invoke("c2", "delete"), info("c2", "delete")]
    assert verdict(history + read("c3", None) + read("c3", "1")) == "violation"


def test_invoke_without_completion_is_an_unknown_outcome() -> None:
    assert verdict([invoke("c1", "write", "1")] + read("c2", "1")) == "ok"
    assert verdict([invoke("c1", "write", "1")] + read("c2", None)) == "ok"


def test_failed_operations_did_not_happen() -> None:
    failed = write("c1", "1") + [invoke("c1", "write", "2"), fail("c1", "write")]
    assert verdict(failed + read("c2", "1")) == "ok"
    assert verdict(failed + read("c2", "2")) == "violation"


def test_keys_are_linearized_independently() -> None:
    # As one register this would fail (read "1" after write "2"); as two keys it is fine.
    history = write("c1", "1", key="x") + write("c1", "2", key="y") + read("c2", "1", key="x")
    assert verdict(history) == "ok"


def test_a_violation_reports_the_key_it_was_found_on() -> None:
    history = (write("c1", "1", key="a") + write("c1", "1", key="b") + write("c1", "2", key="b")
               + read("c2", "1", key="a") + read("c2", "1", key="b"))
    result = check_history(history)
    assert (result.verdict, result.key) == ("violation", "b")
    assert {op.key for op in result.history} == {"b"}


def test_operations_can_be_checked_without_events() -> None:
    ops = [
        Operation("c1", "write", "x", "1", None, call=0, ret=1),
        Operation("c2", "read", "x", None, "1", call=2, ret=3),
        Operation("c3", "cas", "x", ("1", "2"), None, call=4, ret=None),
    ]
    assert check_operations(ops).verdict == "ok"
    stale = [*ops, Operation("c1", "read", "x", None, "9", call=5, ret=6)]
    assert check_operations(stale).verdict == "violation"


def test_events_pair_into_operations_with_their_positions() -> None:
    events = [invoke("c1", "write", "1"), invoke("c2", "read"), ok("c1", "write", "1"),
              info("c2", "read"), invoke("c3", "delete")]
    assert [(op.client, op.call, op.ret) for op in operations_from_events(events)] == [
        ("c1", 0, 2), ("c2", 1, None), ("c3", 4, None)
    ]


def test_budget_exhaustion_gives_unknown_with_advice() -> None:
    clients = [f"c{i}" for i in range(12)]
    history = [invoke(c, "write", c) for c in clients] + [ok(c, "write", c) for c in clients]
    history += read("r", "c0") + read("r", "c1")  # only one write can be last
    result = check_history(history, max_steps=50)
    assert (result.verdict, result.key, result.steps) == ("unknown", "x", 50)
    assert "budget of 50 steps ran out" in result.message
    assert "max_steps=500" in result.message


def test_budget_is_shared_across_keys() -> None:
    per_key = check_history(write("c1", "1", key="a") + read("c1", "1", key="a")).steps
    history = write("c1", "1", key="a") + read("c1", "1", key="a")
    history += write("c1", "1", key="b") + read("c1", "1", key="b")
    assert check_history(history).steps == 2 * per_key
    assert check_history(history, max_steps=2 * per_key - 1).verdict == "unknown"


# --- malformed histories -----------------------------------------------------------------


def test_ok_without_invoke_is_rejected_naming_the_event() -> None:
    with pytest.raises(ValueError, match=r"event 2: ok from client 'c2' with no outstanding"):
        check_history(write("c1", "1") + [ok("c2", "read", "1")])


def test_second_outstanding_invoke_is_rejected_naming_the_event() -> None:
    with pytest.raises(ValueError, match=r"event 1: client 'c1' invokes read while its "
                                         r"invoke at event 0 is still outstanding"):
        check_history([invoke("c1", "write", "1"), invoke("c1", "read")])


def test_unknown_f_is_rejected_naming_the_event() -> None:
    with pytest.raises(ValueError, match=r"event 2: unknown f 'incr'"):
        check_history(write("c1", "1") + [invoke("c1", "incr", 1)])  # type: ignore[arg-type]


def test_completion_that_does_not_match_its_invoke_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"event 1: ok read on key 'x' does not match"):
        check_history([invoke("c1", "write", "1"), ok("c1", "read", "1")])


# --- generated histories -----------------------------------------------------------------


@st.composite
def concurrent_histories(draw: st.DrawFn) -> list[Event]:
    """Clients with overlapping invoke/complete windows run against one real register
    per key; each operation takes effect atomically at a drawn moment inside its window,
    and its completion reports what actually happened, so the history is linearizable
    by construction. Some operations fail (never applied) or crash (info: applied at a
    drawn moment, possibly after the info, or never). A final read by a fresh client
    makes sure there is at least one read."""
    clients = [f"c{i}" for i in range(draw(st.integers(1, 5)))]
    budget = draw(st.integers(1, 24))
    store: dict[str, str | None] = {"a": None, "b": None}
    events: list[Event] = []
    running: dict[str, tuple[OpName, str, object, object, bool]] = {}
    crashed: list[tuple[OpName, str, object]] = []
    kinds: list[OpName] = ["read", "read", "write", "write", "cas", "delete"]

    def apply(f: OpName, key: str, value: object) -> object:
        current = store[key]
        if f == "read":
            return current
        if f == "write":
            store[key] = str(value)
        elif f == "delete":
            store[key] = None
        else:
            assert isinstance(value, tuple)
            if current != value[0]:
                return False
            store[key] = value[1]
            return True
        return None

    while budget or running:
        idle = [c for c in clients if c not in running]
        moves = ["invoke"] * bool(budget and idle) + ["step"] * bool(running)
        moves += ["zombie"] * bool(crashed)
        move = draw(st.sampled_from(moves))
        if move == "invoke":
            budget -= 1
            client = draw(st.sampled_from(idle))
            f = draw(st.sampled_from(kinds))
            key = draw(st.sampled_from(["a", "b"]))
            value: object = None
            if f == "write":
                value = draw(st.sampled_from("123"))
            elif f == "cas":
                value = (draw(st.sampled_from([None, "1", "2", "3"])), draw(st.sampled_from("123")))
            events.append(invoke(client, f, value, key))
            running[client] = (f, key, value, None, False)
        elif move == "zombie":
            f, key, value = crashed.pop(draw(st.integers(0, len(crashed) - 1)))
            apply(f, key, value)
        else:
            client = draw(st.sampled_from(sorted(running)))
            f, key, value, output, applied = running[client]
            if not applied and draw(st.booleans()):
                running[client] = (f, key, value, apply(f, key, value), True)
                continue
            outcome = draw(st.sampled_from(["ok"] * 6 + ["info", "fail"]))
            del running[client]
            if outcome == "fail" and not applied:
                events.append(fail(client, f, key))
            elif outcome == "info":
                events.append(info(client, f, key))
                if not applied:
                    crashed.append((f, key, value))
            else:
                if not applied:
                    output = apply(f, key, value)
                events.append(ok(client, f, output if f in ("read", "cas") else value, key))
    events += read("final", store["a"], key="a")
    return events


@settings(max_examples=60, deadline=None)
@given(concurrent_histories())
def test_histories_of_a_real_concurrent_execution_are_linearizable(
    events: list[Event],
) -> None:
    result = check_history(events)
    assert result.verdict == "ok", result.message


@settings(max_examples=60, deadline=None)
@given(concurrent_histories(), st.data())
def test_a_read_changed_to_an_unwritten_value_is_a_violation(
    events: list[Event], data: st.DataObject
) -> None:
    reads = [i for i, e in enumerate(events) if e.type == "ok" and e.f == "read"]
    target = data.draw(st.sampled_from(reads))
    mutated = list(events)
    mutated[target] = ok(events[target].client, "read", "never-written", events[target].key)
    result = check_history(mutated)
    assert result.verdict == "violation"
    assert result.key == events[target].key


def register_allows(order: tuple[Operation, ...]) -> bool:
    """An independent register, for the oracle below."""
    state: object = None
    for op in order:
        if op.f == "read" and op.ret is not None and op.output != state:
            return False
        if op.f == "write":
            state = op.input
        elif op.f == "delete":
            state = None
        elif op.f == "cas":
            assert isinstance(op.input, tuple)
            swapped = state == op.input[0]
            if op.ret is not None and op.output != swapped:
                return False
            state = op.input[1] if swapped else state
    return True


def linearizable_by_enumeration(ops: list[Operation]) -> bool:
    """Every subset of the unknown operations, every order that respects real time."""
    known = [op for op in ops if op.ret is not None]
    unknown = [op for op in ops if op.ret is None]
    for size in range(len(unknown) + 1):
        for taken in itertools.combinations(unknown, size):
            for order in itertools.permutations(known + list(taken)):
                respects_time = all(
                    b.ret is None or b.ret > a.call
                    for i, a in enumerate(order) for b in order[i + 1:]
                )
                if respects_time and register_allows(order):
                    return True
    return False


@st.composite
def small_arbitrary_histories(draw: st.DrawFn) -> list[Operation]:
    """Up to five operations with random windows and random outputs: mostly wrong."""
    count = draw(st.integers(1, 5))
    points = draw(st.permutations(range(2 * count)))
    values = st.sampled_from([None, "1", "2"])
    ops = []
    for i in range(count):
        call, ret = sorted(points[2 * i: 2 * i + 2])
        f: OpName = draw(st.sampled_from(["read", "write", "cas", "delete"]))
        given_input: object = None
        output: object = None
        if f == "read":
            output = draw(values)
        elif f == "write":
            given_input = draw(st.sampled_from(["1", "2"]))
        elif f == "cas":
            given_input = (draw(values), draw(st.sampled_from(["1", "2"])))
            output = draw(st.booleans())
        known = draw(st.integers(0, 4)) > 0
        ops.append(Operation(f"c{i}", f, "x", given_input, output if known else None,
                             call, ret if known else None))
    return ops


@settings(max_examples=150, deadline=None)
@given(small_arbitrary_histories())
def test_verdicts_agree_with_enumerating_every_order(ops: list[Operation]) -> None:
    result = check_operations(ops)
    assert (result.verdict == "ok") == linearizable_by_enumeration(ops)
    if result.verdict == "violation":
        assert not linearizable_by_enumeration(result.history)


# --- what a violation comes with ---------------------------------------------------------


def test_violation_is_reduced_to_the_few_operations_that_show_it() -> None:
    unrelated: list[Event] = []
    for i in range(25):  # 50 operations on other keys, each read overlapping a write
        key = f"k{i % 5}"
        unrelated += [invoke("u1", "write", str(i), key), invoke("u2", "read", None, key),
                      ok("u1", "write", str(i), key), ok("u2", "read", str(i), key)]
    same_key: list[Event] = []
    for i in range(10):  # 20 operations on the failing key, all fine on their own
        same_key += write("c1", f"v{i}") + read("c2", f"v{i}")
    events = unrelated[:50] + same_key[:20] + unrelated[50:] + same_key[20:]
    events += read("c3", "v3")  # stale: v4..v9 were written after v3, all completed
    result = check_history(events)
    assert result.verdict == "violation"
    assert result.key == "x"
    assert len(result.history) <= 4
    assert result.history[-1].label == 'read -> "v3"'
    assert "after write" in result.message


def test_steps_are_deterministic() -> None:
    events = [invoke(f"c{i}", "write", str(i)) for i in range(6)]
    events += [ok(f"c{i}", "write", str(i)) for i in range(6)] + read("r", "0")
    assert check_history(events).steps == check_history(events).steps


def test_render_labels_every_operation_and_leaves_unknown_ones_open() -> None:
    ops = [
        Operation("c1", "write", "x", "1", None, call=0, ret=None, call_time=0.5),
        Operation("c2", "write", "x", "2", None, call=1, ret=2),
        Operation("c3", "cas", "x", ("2", "3"), True, call=3, ret=4),
        Operation("c4", "read", "x", None, "2", call=5, ret=6),
    ]
    result = LinearizabilityResult("violation", "x", ops, 10, 'key "x": no linearization')
    page = render_history_html(result)
    for op in ops:
        assert html.escape(op.label) in page
    assert "write &quot;1&quot; -&gt; ?" in page
    assert 'cas &quot;2&quot; to &quot;3&quot; -&gt; True' in page
    assert "dashed" in page and "outcome unknown" in page
    assert "http" not in page and "<script" not in page


def test_render_escapes_client_names_and_values() -> None:
    evil = "<b>&\"'"
    history = write(evil, evil) + write("c2", "2") + read("c3", evil)
    result = check_history(history)
    page = render_history_html(result)
    assert result.verdict == "violation"
    assert "<b>" not in page
    assert html.escape(evil) in page


def test_render_of_a_passing_history_shows_the_verdict() -> None:
    result: LinearizabilityResult = check_history(write("c1", "1") + read("c2", "1"))
    page = render_history_html(result)
    assert ">ok</strong>" in page
    assert html.escape(result.message) in page

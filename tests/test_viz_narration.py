"""The narration a newcomer reads: each of issue 14's gaps, pinned on the narration text.

Records are written as the simulator makes them (see docs/scenarios.md, "The trace");
the last test runs real scenarios, so the sentences are checked on real traces too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from raftsim.scenario import load_scenario
from raftsim.scenario.runner import ScenarioRunner
from raftsim.viz.console import NarrationPrinter
from raftsim.viz.narration import Line, narrate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

Record = dict[str, Any]


def _rec(t: float, server: str | None, kind: str, term: int = 1, **fields: Any) -> Record:
    return {"t": t, "server": server, "term": term, "kind": kind, **fields}


def _starts(servers: int = 5) -> list[Record]:
    return [_rec(0.0, f"s{k}", "start", last_index=1, last_term=1, commit=1)
            for k in range(1, servers + 1)]


def _texts(records: list[Record]) -> list[str]:
    return [f"{line.server or '--'}: {line.text}" for line in narrate(records)]


def test_index_1_is_explained_the_first_time() -> None:
    texts = _texts(_starts())
    assert texts[0] == ("s1: started with log up to index 1, commit index 1. Index 1 is the "
                        "starting configuration (the list of servers), which every server "
                        "begins with, already committed")
    assert texts[1:] == [f"s{k}: started with log up to index 1, commit index 1"
                         for k in range(2, 6)]


def test_index_2_the_no_op_is_explained_the_first_time() -> None:
    # as the simulator records it: a new leader appends its no-op, then says it leads
    records = [*_starts(),
               _rec(0.19, "s1", "role", 2, role="candidate", leader=None),
               _rec(0.2, "s1", "append", 2, **{"from": 2, "to": 2, "terms": [2]}),
               _rec(0.2, "s1", "role", 2, role="leader", leader="s1"),
               _rec(0.3, "s1", "append", 2, **{"from": 3, "to": 3, "terms": [2]})]
    texts = _texts(records)
    assert texts[6] == ("s1: appended index 2 (term 2) to its log. Index 2 is the new "
                        "leader's no-op: an empty entry of its own term, which it commits "
                        "first, and with it everything before it")
    assert texts[8] == "s1: appended index 3 (term 2) to its log"


def test_followers_appends_appear() -> None:
    records = [*_starts(3),
               _rec(0.19, "s1", "role", 2, role="candidate", leader=None),
               _rec(0.2, "s1", "append", 2, **{"from": 2, "to": 2, "terms": [2]}),
               _rec(0.2, "s1", "role", 2, role="leader", leader="s1"),
               _rec(0.21, "s2", "append", 2, **{"from": 2, "to": 2, "terms": [2]}),
               _rec(0.21, "s2", "role", 2, role="follower", leader="s1"),
               _rec(0.3, "s2", "append", 2, **{"from": 3, "to": 5, "terms": [2, 2, 2]})]
    texts = _texts(records)
    assert "s2: stored index 2 (term 2) in its log" in texts
    assert "s2: stored indexes 3 to 5 (term 2) from s1" in texts


def _pre_vote_round(answers: list[tuple[str, bool | None]], t: float = 0.5) -> list[Record]:
    """s3 asks for pre-votes; each answer is granted (True), refused (False) or ignored
    (None, the voter heard from a leader recently)."""
    out = [_rec(t, "s3", "election-timeout", 2),
           _rec(t, "s3", "role", 2, role="pre-candidate", leader=None)]
    for i, (voter, granted) in enumerate(answers):
        when = t + 0.001 * (i + 1)
        if granted is None:
            out.append(_rec(when, voter, "vote-ignored", 2, candidate="s3", pre_vote=True,
                            reason="lease"))
        else:
            out.append(_rec(when, voter, "vote", 2, candidate="s3", granted=granted,
                            pre_vote=True))
    return out


def test_a_failed_pre_vote_is_summarised_in_one_line() -> None:
    records = [*_starts(), *_pre_vote_round(
        [("s1", True), ("s2", None), ("s4", False), ("s5", None)])]
    texts = _texts(records)[5:]
    assert texts == [
        "s3: heard from no leader for an election timeout and starts an election",
        "s3: became a pre-candidate: asks whether it could win term 3 before disturbing "
        "anyone",
        "s3: 2 of 5 would vote for s3 (3 needed): s3 stays a follower of term 2, and "
        "nobody is disturbed",
    ]
    assert not any("would vote for s3 (pre-vote)" in t for t in texts)


def test_a_pre_vote_without_every_answer_is_summarised_at_the_next_timeout() -> None:
    records = [*_starts(), *_pre_vote_round([("s1", True)]),
               _rec(0.8, "s3", "election-timeout", 2)]
    texts = _texts(records)[5:]
    assert texts[-1] == ("s3: 2 of 5 would vote for s3 (3 needed): s3 stays a follower of "
                         "term 2, and nobody is disturbed. It heard from no leader for an "
                         "election timeout and starts an election")


def test_a_pre_vote_ended_by_a_newer_term_says_so() -> None:
    records = [*_starts(), *_pre_vote_round([("s1", True)]),
               _rec(0.6, "s3", "role", 3, role="follower", leader=None)]
    assert _texts(records)[-1] == ("s3: 2 of 5 would vote for it (3 needed); now it is a "
                                   "follower in term 3, with no leader known")


def test_a_won_pre_vote_is_summarised_on_the_candidacy() -> None:
    records = [*_starts(), *_pre_vote_round([("s1", True), ("s2", True)]),
               _rec(0.51, "s3", "role", 3, role="candidate", leader=None),
               _rec(0.52, "s4", "vote", 2, candidate="s3", granted=True, pre_vote=True)]
    texts = _texts(records)[5:]
    assert texts[2:] == ["s3: 3 of 5 would vote for s3: became a candidate for term 3 and "
                         "asks everyone for votes"]


def test_a_duplicated_message_is_not_told_twice() -> None:
    vote = _rec(0.3, "s2", "vote", 2, candidate="s1", granted=True, pre_vote=False)
    ignored = _rec(0.4, "s2", "vote-ignored", 2, candidate="s4", pre_vote=False,
                   reason="lease")
    records = [*_starts(), vote, {**vote, "t": 0.31}, ignored, {**ignored, "t": 0.41}]
    texts = _texts(records)[5:]
    assert texts == ["s2: voted for s1 in term 2",
                     "s2: ignored s4's vote request: it heard from a leader recently"]


def test_a_restarted_servers_commit_index_is_explained() -> None:
    records = [*_starts(),
               _rec(1.0, "s5", "crash", 2),
               _rec(2.0, "s5", "start", 2, last_index=6, last_term=2, commit=4)]
    assert _texts(records)[-1] == (
        "s5: restarted from its disk with log up to index 6, commit index 4: the commit "
        "index is saved with the term and the vote, so it knows everything up to 4 is "
        "committed; whether entries 5 to 6 are, it learns from the leader")


def test_say_markdown_shows_cleanly_in_the_terminal() -> None:
    out = io.StringIO()
    printer = NarrationPrinter(out, color=False)
    printer.print_line(Line(1.0, None, 0, "**Only** a `majority` commits: see "
                            "[the paper](https://raft.github.io/raft.pdf), *figure 8*",
                            "say"))
    assert out.getvalue() == ("    1.000s    --  Only a majority commits: see the paper "
                              "(https://raft.github.io/raft.pdf), figure 8\n")


def test_real_runs_tell_appends_and_summarise_pre_votes() -> None:
    scenario = load_scenario(SCENARIOS / "one-way-partition.toml")
    result = ScenarioRunner(scenario).run()
    texts = [line.text for line in narrate(result.records)]
    assert not any(text.startswith("ignored s1's vote request") for text in texts)
    summaries = [t for t in texts if t.startswith("0 of 5 would vote for s1")
                 or t.startswith("1 of 5 would vote for s1")]
    assert summaries, texts
    assert any(text.startswith("stored index") for text in texts)


def test_a_long_answer_is_shortened_in_the_story_but_whole_in_the_trace() -> None:
    body = "answered 200: " + "x" * 986
    records = [_rec(1.0, "s2", "client", text=body)]
    assert _texts(records) == ["s2: answered 200: " + "x" * 286 + "... (700 more "
                               "characters; the trace has the whole answer)"]
    assert records[0]["text"] == body

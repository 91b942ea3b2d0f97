"""The HTML space-time diagram: a self-contained page that draws any trace without errors.

Traces here are made by hand (not by the simulator) so the page is tested against the
record format itself, including records the simulator would never make.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from raftsim.viz.html import render_html
from raftsim.viz.narration import narrate

Record = dict[str, Any]
SERVERS = ["s1", "s2", "s3", "s4", "s5"]


# ---------------------------------------------------------------------- trace builders

class TraceBuilder:
    """Writes records in the simulator's format, with a message id counter."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._id = 0

    def event(self, t: float, server: str | None, term: int, kind: str,
              **fields: Any) -> Record:
        rec: Record = {"t": round(t, 6), "server": server, "term": term, "kind": kind}
        rec.update(fields)
        self.records.append(rec)
        return rec

    def fault(self, t: float, fault: str, **fields: Any) -> None:
        self.event(t, None, 0, "fault", fault=fault, **fields)

    def send(self, t: float, source: str, target: str, msg: str, term: int,
             **fields: Any) -> int:
        self._id += 1
        self.event(t, source, term, "send", id=self._id, to=target, msg=msg, **fields)
        return self._id

    def deliver(self, t: float, ident: int, source: str, target: str, msg: str) -> None:
        self.event(t, target, 0, "deliver", id=ident, **{"from": source}, msg=msg)

    def drop(self, t: float, ident: int, source: str, target: str, msg: str,
             reason: str) -> None:
        self.event(t, source, 0, "drop", id=ident, to=target, reason=reason, msg=msg)

    def sorted(self) -> list[Record]:
        return sorted(self.records, key=lambda r: r["t"])


def realistic_trace() -> list[Record]:
    """Five servers: a pre-vote election, heartbeats and client entries, s2 paused,
    s5 crashed and restarted, then the leader s3 cut off in a minority partition,
    a new leader s1 on the majority side, and the heal (about 200 messages)."""
    rng = random.Random(7)
    b = TraceBuilder()
    up = set(SERVERS)
    groups: list[set[str]] | None = None

    def latency() -> float:
        return 0.002 + rng.random() * 0.008

    def reachable(a: str, c: str) -> bool:
        return groups is None or any(a in g and c in g for g in groups)

    def rpc(t: float, src: str, dst: str, msg: str, term: int, reply: str,
            reply_fields: dict[str, Any], **fields: Any) -> bool:
        """A request and, if it arrives, its reply. True if the reply arrived."""
        ident = b.send(t, src, dst, msg, term, **fields)
        if not reachable(src, dst):
            b.drop(t, ident, src, dst, msg, "partition")
            return False
        arrive = t + latency()
        if dst not in up:
            b.drop(arrive, ident, src, dst, msg, "crashed")
            return False
        b.deliver(arrive, ident, src, dst, msg)
        back = b.send(arrive, dst, src, reply, term, **reply_fields)
        b.deliver(arrive + latency(), back, dst, src, reply)
        return True

    b.event(0.0, None, 0, "say", text="Five servers boot; nobody is leader yet.")
    for s in SERVERS:
        b.event(0.0, s, 0, "start", last_index=0, commit=0)

    def elect(t: float, cand: str, term: int, voters: list[str], log: int) -> float:
        b.event(t, cand, term - 1, "election-timeout")
        b.event(t, cand, term - 1, "role", role="pre-candidate", leader=None)
        for pre in (True, False):
            if not pre:
                t += 0.012
                b.event(t, cand, term, "role", role="candidate", leader=None)
            for v in voters:
                if rpc(t, cand, v, "RequestVote", term, "RequestVoteResponse",
                       {"granted": True, "pre": pre}, pre=pre, last_index=log,
                       last_term=term - 1):
                    b.event(t + 0.005, v, term if not pre else term - 1, "vote",
                            candidate=cand, granted=True, pre_vote=pre)
        t += 0.012
        b.event(t, cand, term, "role", role="leader", leader=cand)
        return t

    term, leader, log, commit = 1, "s3", 0, 0
    t = elect(0.18, "s3", 1, ["s1", "s2", "s4", "s5"], 0)
    following: set[str] = set()
    paused = False
    while t < 2.1:
        t += 0.08
        if 0.55 <= t < 0.65 and "s5" in up:
            b.fault(t - 0.02, "crash", target="s5")
            b.event(t - 0.02, "s5", term, "crash")
            up.discard("s5")
            following.discard("s5")
        if 0.95 <= t < 1.05 and "s5" not in up:
            b.fault(t - 0.03, "restart", target="s5")
            b.event(t - 0.03, "s5", term, "start", last_index=log - 2, commit=commit - 2)
            up.add("s5")
        if 0.35 <= t < 0.45 and not paused:
            b.fault(t - 0.01, "pause", target="s2")
            b.event(t - 0.01, "s2", term, "pause")
            paused = True
        if 0.55 <= t < 0.65 and paused:
            b.fault(t - 0.04, "resume", target="s2")
            b.event(t - 0.04, "s2", term, "resume")
            paused = False
        if 1.15 <= t < 1.25 and groups is None:
            b.fault(t - 0.05, "partition", groups=[["s3", "s4"], ["s1", "s2", "s5"]])
            groups = [{"s3", "s4"}, {"s1", "s2", "s5"}]
        if 1.45 <= t < 1.55 and leader == "s3":
            b.event(t - 0.07, "s3", term, "step-down",
                    reason="no quorum heard within an election timeout")
            b.event(t - 0.07, "s3", term, "role", role="follower", leader=None)
            term += 1
            leader = "s1"
            t = elect(t - 0.05, "s1", term, ["s2", "s5", "s3", "s4"], log)
            following = set()
            b.event(t, None, 0, "api", method="GET", path="/v1/operator/raft/configuration",
                    status=200, body="")
        if 1.75 <= t < 1.85 and groups is not None:
            b.fault(t - 0.02, "heal")
            groups = None
        n = 0
        if int(t * 10) % 4 == 0:
            n = 1 + int(t * 10) % 3
            b.event(t, leader, term, "append", **{"from": log + 1, "to": log + n})
        ok_count = 1
        for f in SERVERS:
            if f == leader:
                continue
            if rpc(t, leader, f, "AppendEntries", term, "AppendEntriesResponse",
                   {"ok": True, "match": log + n}, prev=log, n=n, commit=commit):
                ok_count += 1
                if f not in following:
                    following.add(f)
                    b.event(t + 0.004, f, term, "role", role="follower", leader=leader)
                if commit:
                    b.event(t + 0.005, f, term, "commit", index=commit)
        log += n
        if n and ok_count >= 3:
            commit = log
            b.event(t + 0.02, leader, term, "commit", index=commit)
    # one message still in flight when the trace ends
    b.send(t + 0.05, leader, "s2", "AppendEntries", term, prev=log, n=0, commit=commit)
    b.event(t + 0.05, None, 0, "expect", ok=True, text="exactly one leader per term")
    return b.sorted()


def heavy_trace(messages: int = 35_000) -> list[Record]:
    """Heartbeat storms: ``messages`` sends with their deliveries (about 100k records
    with the replies' records), a few drops, to check the page stays usable."""
    rng = random.Random(3)
    b = TraceBuilder()
    for s in SERVERS:
        b.event(0.0, s, 0, "start", last_index=0, commit=0)
    b.event(0.1, "s1", 1, "role", role="leader", leader="s1")
    t, sent = 0.1, 0
    while sent < messages:
        t += 0.01
        for f in SERVERS[1:]:
            ident = b.send(t, "s1", f, "AppendEntries", 1, prev=sent, n=sent % 3, commit=0)
            if rng.random() < 0.01:
                b.drop(t, ident, "s1", f, "AppendEntries", "loss")
            else:
                b.deliver(t + 0.003, ident, "s1", f, "AppendEntries")
            sent += 1
        b.event(t + 0.006, "s1", 1, "commit", index=sent)
    b.fault(t / 2, "partition", groups=[["s1", "s2", "s3"], ["s4", "s5"]])
    b.fault(t * 0.6, "heal")
    return b.sorted()


# ---------------------------------------------------------------------- static checks

class _Scripts(HTMLParser):
    """Collects script bodies and every src/href, the way a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, str] = {}
        self.links: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "xlink:href", "action"):
            if values.get(name):
                self.links.append(str(values[name]))
        if tag == "script":
            self._current = str(values.get("id") or f"inline-{len(self.scripts)}")
            self.scripts[self._current] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.scripts[self._current] += data


def _parse(page: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(page)
    parser.close()
    return parser


def test_page_is_self_contained() -> None:
    page = render_html(realistic_trace(), title="run", servers=SERVERS)
    parser = _parse(page)
    assert not [u for u in parser.links if re.match(r"\s*(https?:)?//", u)]
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(http" not in page
    assert re.search(r"<(link|iframe|img|object|embed)\b", page) is None
    assert "fetch(" not in page and "XMLHttpRequest" not in page


def test_embedded_json_round_trips() -> None:
    records = realistic_trace()
    records.append({"t": 3.0, "server": None, "term": 0, "kind": "say",
                    "text": "unicode \u00e9\u2713 \u2028 & <b>bold</b> \"quotes\""})
    page = render_html(records, title="run", servers=SERVERS)
    scripts = _parse(page).scripts
    assert json.loads(scripts["raftsim-records"]) == records
    meta = json.loads(scripts["raftsim-meta"])
    assert meta["servers"] == SERVERS


def test_script_closing_tag_in_a_record_is_escaped() -> None:
    evil = "</script><script>alert(1)</script><!-- <script>"
    records: list[Record] = [
        {"t": 0.0, "server": None, "term": 0, "kind": "say", "text": evil},
        {"t": 0.5, "server": "s1", "term": 1, "kind": "step-down", "reason": evil},
    ]
    page = render_html(records, title="t", servers=["s1"])
    # exactly the page's own three script elements, each closed once
    assert page.count("<script") == 3
    assert page.count("</script>") == 3
    assert "<!--" not in page
    scripts = _parse(page).scripts
    assert json.loads(scripts["raftsim-records"]) == records
    assert set(scripts) == {"raftsim-records", "raftsim-meta", "inline-2"}


def test_title_and_description_are_escaped() -> None:
    page = render_html([], title="<b>Figure 8</b> & co", description="a<script>x()</script>\nb",
                       servers=["s1"])
    assert "<title>&lt;b&gt;Figure 8&lt;/b&gt; &amp; co</title>" in page
    assert "<h1>&lt;b&gt;Figure 8&lt;/b&gt; &amp; co</h1>" in page
    assert "a&lt;script&gt;x()&lt;/script&gt;\nb" in page
    assert "<b>Figure 8</b>" not in page


def test_extra_html_is_inserted_verbatim_at_the_end() -> None:
    fragment = '<table class="history"><tr><td>put x=1</td></tr></table>'
    page = render_html([], title="t", servers=["s1"], extra_html=fragment)
    assert fragment in page
    assert page.index(fragment) > page.index('id="rs-story-list"')
    assert 'id="rs-extra"' not in render_html([], title="t", servers=["s1"])


def test_narration_list_matches_narrate() -> None:
    records = realistic_trace()
    meta = json.loads(_parse(render_html(records, title="t", servers=SERVERS))
                      .scripts["raftsim-meta"])
    listed = [text for _, text, is_listed in meta["notes"] if is_listed]
    assert listed == [line.text for line in narrate(records)]
    # every record that narration can tell has a sentence for its tooltip, e.g.
    # a follower's commit, which the narration list leaves out
    indexed = {i: text for i, text, _ in meta["notes"]}
    follower_commit = next(i for i, r in enumerate(records)
                           if r["kind"] == "commit" and r["server"] != "s3")
    assert indexed[follower_commit].startswith("committed everything")


def test_awkward_records_still_render() -> None:
    records: list[Record] = [
        {"t": float("inf"), "server": "s1", "term": 1, "kind": "commit", "index": 1},
        {"t": 0.1, "server": "s1", "term": None, "kind": "role", "role": "pre-candidate"},
        {"t": 0.2, "server": "zz", "term": 1, "kind": "weird", "blob": {"a": [1, 2]}},
    ]
    page = render_html(records, title="t", servers=["s1"])
    data = json.loads(_parse(page).scripts["raftsim-records"])
    assert data[0]["t"] == "inf"
    assert data[2]["blob"] == {"a": [1, 2]}


def test_realistic_trace_shape() -> None:
    records = realistic_trace()
    sends = [r for r in records if r["kind"] == "send"]
    assert 180 <= len(sends) <= 260
    kinds = {r["kind"] for r in records}
    assert {"deliver", "drop", "role", "commit", "fault", "crash", "pause"} <= kinds
    assert any(r["kind"] == "role" and r["role"] == "leader" and r["server"] == "s1"
               for r in records)


# ---------------------------------------------------------------------- in a browser

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which(
    "chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


class Page:
    """A Chromium page on a rendered file, with every console error and request kept."""

    def __init__(self, browser: Any, path: Path, width: int = 1500, height: int = 950) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            self.errors.append(f"console {msg.type}: {msg.text}")

    def check_clean(self) -> None:
        assert self.errors == []
        assert [u for u in self.requests if not u.startswith(("file:", "data:"))] == []


@pytest.fixture(scope="module")
def browser() -> Any:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


def _write(tmp_path: Path, name: str, records: list[Record], servers: list[str],
           **kwargs: Any) -> Path:
    path = tmp_path / f"{name}.html"
    path.write_text(render_html(records, title=name, servers=servers, **kwargs),
                    encoding="utf-8")
    return path


def _range_text(page: Any) -> str:
    return str(page.locator("#rs-range").inner_text())


@needs_chromium
def test_browser_realistic_run(browser: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, "realistic", realistic_trace(), SERVERS,
                  description="An election, a crash, a partition and its heal.",
                  extra_html="<p id='extra-fragment'>history goes here</p>")
    view = Page(browser, path)
    page = view.page
    for s in SERVERS:
        assert page.locator(f'[data-lane="{s}"]').count() == 1
    assert page.locator("[data-lane]").count() == len(SERVERS)
    arrows = page.locator("path[data-msg]")
    assert arrows.count() > 100
    assert page.locator("#rs-diagram path.xmark").count() == 1
    assert page.locator(".alabel").count() >= 5
    assert page.locator("#rs-story-list li[data-n]").count() > 20
    assert page.locator("#extra-fragment").is_visible()
    page.screenshot(path=str(tmp_path / "realistic.png"), full_page=True)

    before = arrows.count()
    # hover the middle of an AppendEntries arrow with entries: its tooltip tells it
    target = None
    for k in range(arrows.count()):
        arrow = arrows.nth(k)
        if "hb" not in (arrow.get_attribute("class") or ""):
            target = arrow
            break
    assert target is not None
    box = target.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tooltip = page.locator("#rs-tooltip")
    tooltip.wait_for(state="visible")
    assert "\u2192" in tooltip.inner_text()
    assert "sends" in tooltip.inner_text()
    page.screenshot(path=str(tmp_path / "realistic-hover.png"))

    # with the messages hidden, hovering the middle of a lane bar tells the server's role
    page.locator("#rs-show-messages").uncheck()
    page.wait_for_function("document.querySelectorAll('path[data-msg]').length === 0")
    bars = [b for b in (page.locator('[data-lane="s1"] rect.bar').nth(k).bounding_box()
                        for k in range(page.locator('[data-lane="s1"] rect.bar').count()))
            if b is not None]
    widest = max(bars, key=lambda b: b["width"])
    page.mouse.move(widest["x"] + widest["width"] / 2, widest["y"] + widest["height"] / 2)
    page.wait_for_function(
        "document.getElementById('rs-tooltip').innerText.includes('s1 is')")
    page.locator("#rs-show-messages").check()
    page.wait_for_function(f"document.querySelectorAll('path[data-msg]').length === {before}")

    # heartbeats can be hidden
    page.mouse.move(5, 5)
    page.locator("#rs-show-heartbeats").uncheck()
    page.wait_for_function(f"document.querySelectorAll('path[data-msg]').length < {before}")
    assert page.locator("path[data-msg].hb").count() == 0
    assert arrows.count() > 0
    page.locator("#rs-show-heartbeats").check()

    # wheel zooms in around the mouse; the narration list follows the window
    diagram = page.locator("#rs-diagram").bounding_box()
    assert diagram is not None
    before_range = _range_text(page)
    page.mouse.move(diagram["x"] + diagram["width"] * 0.55, diagram["y"] + 120)
    page.mouse.wheel(0, -600)
    page.wait_for_function(
        f"document.getElementById('rs-range').innerText !== {json.dumps(before_range)}")
    in_view = page.locator("#rs-story-list li.inview").count()
    assert 0 < in_view < page.locator("#rs-story-list li[data-n]").count()

    # drag pans
    zoomed = _range_text(page)
    page.mouse.move(diagram["x"] + 600, diagram["y"] + 150)
    page.mouse.down()
    page.mouse.move(diagram["x"] + 300, diagram["y"] + 150, steps=5)
    page.mouse.up()
    page.wait_for_function(
        f"document.getElementById('rs-range').innerText !== {json.dumps(zoomed)}")

    # clicking a narration line moves the view to it and marks the time
    page.locator("#rs-story-list li[data-n]").last.click()
    page.wait_for_selector("#rs-hover .story-cursor", state="attached")
    page.screenshot(path=str(tmp_path / "realistic-zoomed.png"))

    page.locator("#rs-fit").click()
    page.wait_for_function(
        f"document.getElementById('rs-range').innerText === {json.dumps(before_range)}")
    view.check_clean()


EDGE_CASES: dict[str, tuple[list[Record], list[str]]] = {
    "empty": ([], ["s1", "s2", "s3"]),
    "no-servers": ([], []),
    "one-server": ([
        {"t": 0.0, "server": "s1", "term": 0, "kind": "start", "last_index": 0, "commit": 0},
        {"t": 0.2, "server": "s1", "term": 0, "kind": "election-timeout"},
        {"t": 0.2, "server": "s1", "term": 1, "kind": "role", "role": "leader",
         "leader": "s1"},
        {"t": 0.3, "server": "s1", "term": 1, "kind": "commit", "index": 1},
    ], ["s1"]),
    "single-instant": ([
        {"t": 5.0, "server": "s1", "term": 2, "kind": "role", "role": "candidate",
         "leader": None},
        {"t": 5.0, "server": "s1", "term": 2, "kind": "send", "id": 1, "to": "s2",
         "msg": "RequestVote", "pre": False},
    ], ["s1", "s2"]),
    "unmatched-ids": ([
        {"t": 0.1, "server": "s1", "term": 1, "kind": "send", "id": 1, "to": "s2",
         "msg": "AppendEntries", "prev": 0, "n": 1, "commit": 0},
        {"t": 0.2, "server": "s2", "term": 0, "kind": "deliver", "id": 99, "from": "s1",
         "msg": "AppendEntriesResponse"},
        {"t": 0.3, "server": "s2", "term": 0, "kind": "drop", "id": 98, "to": "s1",
         "reason": "loss", "msg": "RequestVoteResponse"},
        {"t": 0.35, "server": "s1", "term": 1, "kind": "send", "id": 2, "to": "s9",
         "msg": "AppendEntries", "prev": 0, "n": 0, "commit": 0},
        {"t": 0.4, "server": "s1", "term": 1, "kind": "send", "id": None, "to": "s2",
         "msg": "TimeoutNow"},
        {"t": 0.5, "server": None, "term": 0, "kind": "fault", "fault": "crash",
         "target": "s2"},
        {"t": 0.6, "server": None, "term": 0, "kind": "mystery"},
        {"t": 0.7, "server": "s1", "term": 1, "kind": "send", "id": 3, "to": "s2",
         "msg": "AppendEntries", "prev": 0, "n": 0, "commit": 0},
        {"t": 0.72, "server": "s2", "term": 0, "kind": "deliver", "id": 3, "from": "s1",
         "msg": "AppendEntries"},
        {"t": 0.74, "server": "s2", "term": 0, "kind": "deliver", "id": 3, "from": "s1",
         "msg": "AppendEntries"},
    ], ["s1", "s2"]),
}


@needs_chromium
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_browser_edge_cases(browser: Any, tmp_path: Path, name: str) -> None:
    records, servers = EDGE_CASES[name]
    view = Page(browser, _write(tmp_path, name, records, servers), width=900, height=600)
    page = view.page
    assert page.locator("[data-lane]").count() == len(servers)
    for s in servers:
        assert page.locator(f'[data-lane="{s}"]').count() == 1
    diagram = page.locator("#rs-diagram").bounding_box()
    assert diagram is not None
    # sweep the mouse over the whole diagram, zoom and drag: no errors anywhere
    for k in range(12):
        page.mouse.move(diagram["x"] + diagram["width"] * k / 11,
                        diagram["y"] + diagram["height"] * ((k * 7) % 11) / 11)
    page.mouse.wheel(0, -400)
    page.mouse.down()
    page.mouse.move(diagram["x"] + 10, diagram["y"] + 10, steps=3)
    page.mouse.up()
    page.dblclick("#rs-diagram")
    page.locator("#rs-show-heartbeats").uncheck()
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    view.check_clean()


@needs_chromium
def test_browser_unmatched_messages_are_drawn(browser: Any, tmp_path: Path) -> None:
    records, servers = EDGE_CASES["unmatched-ids"]
    view = Page(browser, _write(tmp_path, "unmatched", records, servers))
    page = view.page
    # in flight at the end (ids 1 and None), a deliver without send, a drop without send,
    # and a message delivered twice; the message to unknown s9 is not drawn
    assert page.locator("path[data-msg].flight").count() == 2
    assert page.locator("path[data-msg]").count() == 6
    view.check_clean()


@needs_chromium
def test_browser_heavy_trace(browser: Any, tmp_path: Path) -> None:
    records = heavy_trace()
    assert len(records) > 70_000
    path = _write(tmp_path, "heavy", records, SERVERS)
    started = time.monotonic()
    view = Page(browser, path)
    load = time.monotonic() - started
    page = view.page
    assert load < 20, f"the heavy page took {load:.1f}s to draw"
    assert page.locator("[data-lane]").count() == len(SERVERS)
    # crowded: drawn as plain lines, and the page says so
    assert page.locator("#rs-notice").is_visible()
    assert page.locator("path[data-msgs]").count() > 0
    diagram = page.locator("#rs-diagram").bounding_box()
    assert diagram is not None
    page.mouse.move(diagram["x"] + diagram["width"] / 2, diagram["y"] + 150)
    for _ in range(8):
        page.mouse.wheel(0, -800)
    page.wait_for_function("document.querySelectorAll('path[data-msg]').length > 0",
                           timeout=10_000)
    assert not page.locator("#rs-notice").is_visible()
    page.mouse.move(diagram["x"] + diagram["width"] / 2 + 5, diagram["y"] + 160)
    page.screenshot(path=str(tmp_path / "heavy.png"))
    view.check_clean()

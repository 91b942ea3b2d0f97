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
    assert "<p>a&lt;script&gt;x()&lt;/script&gt; b</p>" in page
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
    listed = [note[1] for note in meta["notes"] if note[2]]
    assert listed == [line.text for line in narrate(records)]
    # every record that narration can tell has a sentence for its tooltip, e.g.
    # a follower's commit, which the narration list leaves out
    indexed = {note[0]: note[1] for note in meta["notes"]}
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


SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.fixture(scope="module")
def scenario_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Timelines of real scenario runs, written as ``raftsim run --html`` writes them,
    before the browser starts (Playwright's sync API keeps an event loop in this thread)."""
    from raftsim.scenario import load_scenario, run_scenario
    from raftsim.scenario.command import render_page

    directory = tmp_path_factory.mktemp("scenario-timelines")
    pages = {}
    for name in ("figure-8", "remove-follower", "add-nonvoter"):
        result = run_scenario(load_scenario(SCENARIOS / f"{name}.toml"))
        assert result.passed, result.failure
        pages[name] = directory / f"{name}.html"
        pages[name].write_text(render_page(result), encoding="utf-8")
    return pages


@pytest.fixture(scope="module")
def browser(scenario_pages: dict[str, Path]) -> Any:
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


# ---------------------------------------------------------------------- the log view

def _log_rows(page: Any, grid: str) -> dict[str, dict[str, Any]]:
    """Per server in the log grid ``grid`` (a CSS selector of an ``svg.lg``): its terms by
    index, which indexes are committed, its tag and the indexes with a replaced entry."""
    return dict(page.evaluate("""(sel) => {
      const out = {};
      for (const row of document.querySelector(sel).querySelectorAll(".lg-row")) {
        const cells = [...row.querySelectorAll(".lc:not(.ghost)")];
        out[row.dataset.server] = {
          terms: cells.map((c) => Number(c.dataset.term)),
          committed: cells.filter((c) => c.classList.contains("c"))
            .map((c) => Number(c.dataset.index)),
          tag: (row.querySelector(".lg-tag") || {}).textContent || "",
          replaced: cells.filter((c) => c.querySelector(".lc-was-mark"))
            .map((c) => Number(c.dataset.index)),
          ghosts: [...row.querySelectorAll(".lc.ghost")].map((c) => Number(c.dataset.term)),
        };
      }
      return out;
    }""", grid))


def _frame(page: Any, caption_start: str) -> str:
    """The CSS selector of the log grid of the story frame whose caption starts so."""
    index = page.evaluate("""(start) => [...document.querySelectorAll(".rs-frame")]
      .findIndex((f) => f.querySelector("figcaption").textContent.replace(/^[0-9.]+ s/, "")
        .trim().startsWith(start))""", caption_start)
    assert index >= 0, f"no story frame starts with {caption_start!r}"
    return f".rs-frame:nth-child({index + 1}) svg.lg"


@needs_chromium
def test_browser_log_view_reads_like_figure_8(browser: Any,
                                              scenario_pages: dict[str, Path]) -> None:
    view = Page(browser, scenario_pages["figure-8"])
    page = view.page
    # (b): s5 leads term 3 with its own entry at index 3, for an instant (it crashes next)
    b = _log_rows(page, _frame(page, "(b) s5 wins the next term"))
    assert (b["s5"]["terms"], b["s5"]["committed"], b["s5"]["tag"]) == ([1, 2, 3], [1, 2],
                                                                         "leader")
    assert (b["s1"]["terms"], b["s1"]["tag"]) == ([1, 2, 2], "crashed")
    # (c): index 3 holds s1's term-2 entry on s1, s2 and s3, a majority, yet uncommitted;
    # s5 (crashed) holds its own term-3 entry there
    c = _log_rows(page, _frame(page, "(c) Index 3 (term 2) is on s1, s2 and s3"))
    assert c["s1"]["terms"] == [1, 2, 2, 4] and c["s1"]["tag"] == "leader"
    assert c["s2"]["terms"] == [1, 2, 2, 4]
    assert c["s3"]["terms"] == [1, 2, 2]
    assert c["s4"]["terms"] == [1, 2]
    assert c["s5"]["terms"] == [1, 2, 3] and c["s5"]["tag"] == "crashed"
    for s in ("s1", "s2", "s3"):
        assert c[s]["committed"] == [1, 2], s
    # the end: s5's term-3 entry replaced index 3 everywhere but on the crashed s1, and
    # the replaced term-2 entries of s2 and s3 are marked as such
    end = _log_rows(page, "#rs-log-now svg.lg")
    for s in ("s2", "s3", "s4", "s5"):
        assert end[s]["terms"] == [1, 2, 3, 5], s
        assert end[s]["committed"] == [1, 2, 3, 4], s
    assert end["s1"]["terms"] == [1, 2, 2, 4] and end["s1"]["committed"] == [1, 2]
    assert end["s5"]["tag"] == "leader"
    assert {s: row["replaced"] for s, row in end.items()} == {
        "s1": [], "s2": [3], "s3": [3], "s4": [], "s5": []}
    title = page.locator('#rs-log-now [data-server="s2"] .lc[data-index="3"] title')
    assert "replaced an entry of term 2" in title.text_content()
    # appends and truncations are marked on the lanes (two truncations: s2 and s3)
    assert page.locator("#rs-diagram path.mk-append").count() == 1
    truncations = page.locator("#rs-diagram path.mk-truncate").get_attribute("d") or ""
    assert truncations.count("M") == 2
    # hovering the diagram shows the logs at that moment
    diagram = page.locator("#rs-diagram").bounding_box()
    assert diagram is not None
    page.mouse.move(diagram["x"] + diagram["width"] * 0.3, diagram["y"] + 40)
    page.wait_for_function(
        "document.getElementById('rs-logs-when').textContent.includes('under the pointer')")
    early = _log_rows(page, "#rs-log-now svg.lg")
    assert all(3 not in row["committed"] for row in early.values())
    page.keyboard.press("Escape")
    view.check_clean()


@needs_chromium
def test_browser_log_view_shows_removed_entries_as_ghosts(browser: Any,
                                                          tmp_path: Path) -> None:
    """A truncation that shortens a log leaves struck-out ghosts past its end."""
    b = TraceBuilder()
    for s in ("s1", "s2"):
        b.event(0.0, s, 1, "start", last_index=1, last_term=1, commit=1)
    b.event(0.1, "s2", 2, "append", **{"from": 2, "to": 4}, terms=[2, 2, 2])
    b.event(0.2, "s2", 3, "commit", index=1)
    b.event(0.3, "s2", 3, "truncate", index=3)
    view = Page(browser, _write(tmp_path, "ghosts", b.sorted(), ["s1", "s2"]))
    rows = _log_rows(view.page, "#rs-log-now svg.lg")
    assert rows["s2"]["terms"] == [1, 2] and rows["s2"]["ghosts"] == [2, 2]
    assert rows["s1"]["terms"] == [1] and rows["s1"]["ghosts"] == []
    view.check_clean()


@needs_chromium
def test_browser_partitions_are_drawn_as_sides(browser: Any,
                                               scenario_pages: dict[str, Path]) -> None:
    view = Page(browser, scenario_pages["figure-8"])
    page = view.page
    groups = page.evaluate("""[...document.querySelectorAll("#rs-diagram g.partition")]
      .map((g) => g.dataset.groups)""")
    # the first split; later s5 is isolated, and a new partition keeps that isolation
    assert groups[0] == "s1,s2|s3,s4,s5"
    assert "s1,s3,s4|s2|s5" in groups
    first = page.locator('#rs-diagram g.partition[data-groups="s1,s2|s3,s4,s5"]')
    sides = first.evaluate("""(g) => Object.fromEntries([...g.querySelectorAll("rect.side")]
      .map((r) => [r.dataset.server, r.dataset.side]))""")
    assert sides == {"s1": "s1,s2", "s2": "s1,s2", "s3": "s3,s4,s5", "s4": "s3,s4,s5",
                     "s5": "s3,s4,s5"}
    # one wall, between the lanes of s2 and s3
    assert first.locator("line.wall").count() == 1
    # the one-way cut s1->s3 marks its sender's lane
    assert page.locator('#rs-diagram rect.cut[data-cut="s1>s3"]').count() == 1
    view.check_clean()


@needs_chromium
def test_browser_removed_server_is_marked(browser: Any,
                                          scenario_pages: dict[str, Path]) -> None:
    view = Page(browser, scenario_pages["remove-follower"])
    page = view.page
    assert page.locator("#rs-diagram .removed-mark").count() == 1
    assert page.locator('#rs-diagram .removed-mark[data-server="s1"]').count() == 1
    assert page.locator('[data-lane="s1"] .lane-removed').text_content() == "removed"
    assert page.locator('[data-lane="s1"] rect.bar.removed').count() >= 1
    assert page.locator('[data-lane="s4"] rect.bar.removed').count() == 0
    end = _log_rows(page, "#rs-log-now svg.lg")
    assert end["s1"]["tag"] == "removed"
    assert [s for s, row in end.items() if row["tag"] == "removed"] == ["s1"]
    view.check_clean()
    # a server that joins as a non-voter and is promoted is never "removed"
    joined = Page(browser, scenario_pages["add-nonvoter"])
    assert joined.page.locator("#rs-diagram .removed-mark").count() == 0
    assert joined.page.locator(".lane-removed").count() == 0
    joined.check_clean()


LONG = "a-server-with-a-rather-long-name"


def _long_labels_trace() -> list[Record]:
    """Long server names, long narration, and role changes just before the end of the
    run, where a term label has little room."""
    b = TraceBuilder()
    servers = [LONG, "s2"]
    for s in servers:
        b.event(0.0, s, 1, "start", last_index=1, last_term=1, commit=1)
    b.event(0.05, None, 0, "say", text="A very long explanation that goes on and on about "
            "what happens next, far longer than any label box could hold in one line of "
            "the diagram, with `code` in it and **emphasis** too.")
    b.event(0.3, LONG, 1, "role", role="pre-candidate", leader=None)
    b.event(0.3, None, 0, "fault", fault="partition", groups=[[LONG], ["s2"]])
    b.event(0.9, LONG, 2, "role", role="candidate", leader=None)
    b.event(0.995, "s2", 2, "role", role="pre-candidate", leader=None)
    b.event(0.999, LONG, 2, "role", role="leader", leader=LONG)
    b.event(1.0, "s2", 2, "commit", index=1)
    return b.sorted()


@needs_chromium
@pytest.mark.parametrize("width", [1500, 700])
def test_browser_labels_are_never_cut(browser: Any, tmp_path: Path, width: int) -> None:
    view = Page(browser, _write(tmp_path, "long-labels", _long_labels_trace(), [LONG, "s2"]),
                width=width)
    problems = view.page.evaluate("""() => {
      const bad = [];
      const clip = document.querySelector("#rs-clip rect").getBBox();
      const right = clip.x + clip.width;
      const box = (el) => el.getBBox();
      for (const t of document.querySelectorAll("#rs-diagram .lane-label")) {
        const b = box(t);
        if (b.x + b.width > clip.x) bad.push("lane label " + t.textContent);
      }
      for (const t of document.querySelectorAll("#rs-diagram .lane-removed")) {
        const b = box(t);
        if (b.x + b.width > clip.x) bad.push("removed tag");
      }
      for (const t of document.querySelectorAll("#rs-diagram text.term, #rs-diagram .seg-note")) {
        const b = box(t);
        if (b.x < clip.x || b.x + b.width > right) bad.push("lane text " + t.textContent);
      }
      for (const g of document.querySelectorAll("#rs-diagram .alabel")) {
        const r = box(g.querySelector("rect")), b = box(g.querySelector("text"));
        if (b.x < r.x || b.x + b.width > r.x + r.width) bad.push("label " + b.textContent);
        if (r.x + r.width > right + 0.5) bad.push("label box past the edge");
      }
      for (const c of document.querySelectorAll(".lg .lc")) {
        const r = box(c.querySelector("rect")), b = box(c.querySelector("text"));
        if (b.x < r.x || b.x + b.width > r.x + r.width) bad.push("log cell");
      }
      for (const row of document.querySelectorAll(".lg .lg-row")) {
        const first = row.querySelector(".lc rect");
        if (!first) continue;
        for (const t of row.querySelectorAll(".lg-name, .lg-tag")) {
          const b = box(t);
          if (b.x + b.width > first.getBBox().x) bad.push("log row label " + t.textContent);
        }
      }
      return bad;
    }""")
    assert problems == []
    assert view.page.locator("#rs-diagram .alabel.say").count() == 1
    view.check_clean()


@needs_chromium
def test_browser_markdown_is_rendered_safely(browser: Any, tmp_path: Path) -> None:
    description = """
        First paragraph with `raftsim run --bug commit-prior-term` and **strong** words.

        - one *emphasised* item
        - two: see [the paper](https://raft.github.io/raft.pdf)
        - three <script>window.pwned = 1</script> [bad](javascript:alert(1))

        Second paragraph.
    """
    records: list[Record] = [
        {"t": 0.0, "server": "s1", "term": 1, "kind": "start", "last_index": 1,
         "last_term": 1, "commit": 1},
        {"t": 0.1, "server": None, "term": 0, "kind": "say",
         "text": "s1 runs `raftsim` with *no* <b>markup</b>"},
    ]
    view = Page(browser, _write(tmp_path, "markdown", records, ["s1"],
                                description=description))
    page = view.page
    desc = page.locator(".rs-description")
    assert desc.locator("p").count() == 2
    assert desc.locator("ul > li").count() == 3
    assert desc.locator("code").inner_text() == "raftsim run --bug commit-prior-term"
    assert desc.locator("strong").inner_text() == "strong"
    assert desc.locator("em").inner_text() == "emphasised"
    assert desc.locator("a").count() == 1
    assert desc.locator("a").get_attribute("href") == "https://raft.github.io/raft.pdf"
    assert "[bad](javascript:alert(1))" in desc.inner_text()
    assert "<script>" in desc.inner_text()
    assert page.evaluate("window.pwned") is None
    say = page.locator("#rs-story-list li.say span")
    assert say.locator("code").inner_text() == "raftsim"
    assert say.locator("em").inner_text() == "no"
    assert say.locator("b").count() == 0 and "<b>markup</b>" in say.inner_text()
    # the SVG label shows the text without the markup
    assert (page.locator("#rs-diagram .alabel.say text").text_content() or "").startswith(
        "\u201cs1 runs raftsim with no <b>")
    view.check_clean()

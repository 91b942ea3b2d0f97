"""The HTML space-time diagram of a run: one self-contained file, no network at all.

A run is drawn the way Lamport drew distributed executions: one horizontal lane per
server along virtual time, messages as arrows from the sender at send time to the
receiver at delivery time. The lane is coloured by the server's Raft role (with gaps
while it is crashed and hatching while it is paused), so elections, lost leaderships and
partitions can be seen at a glance, and every mark answers hover with the trace record
and its plain-words narration. Partitions tint each side its own colour, removed servers
are marked, and under the diagram every server's log is drawn as in Figure 8 of the Raft
paper (a box per index, the term inside, committed filled), at the hovered moment and at
each ``say`` of the scenario, replayed from the append/truncate/commit records.

The page must open from a file, a CI artifact or an e-mail attachment, so everything is
inline: CSS, JavaScript, and the trace itself as an embedded JSON array. The SVG is drawn
by the script from that array, only for the visible time window, so a run with 100k
message records stays usable (zoom and pan re-draw; crowded windows draw plain lines).
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

from raftsim.viz.markdown import plain_text, render_inline, render_markdown
from raftsim.viz.narration import Narrator, narrate_record

Record = dict[str, Any]

__all__ = ["render_html"]

# Message records are what the diagram draws as arrows; narration leaves them out.
_MESSAGE_KINDS = frozenset({"send", "deliver", "drop"})

_PLACEHOLDER = re.compile(r"@@([A-Z]+)@@")


def render_html(records: list[Record], *, title: str, description: str = "",
                servers: list[str], extra_html: str = "") -> str:
    """One HTML page showing ``records`` as a space-time diagram, one lane per server.

    ``servers`` fixes the lanes and their order (records about other servers are only
    narrated). ``extra_html`` is trusted markup placed verbatim in a section at the end,
    e.g. the linearizability checker's failing history.
    """
    meta = {"servers": [str(s) for s in servers], "notes": _notes(records)}
    description_html = (f'<div class="rs-description">{render_markdown(description)}</div>'
                        if description.strip() else "")
    extra_section = (f'<section class="rs-extra" id="rs-extra">\n{extra_html}\n</section>'
                     if extra_html else "")
    parts = {
        "TITLE": html.escape(title),
        "DESCRIPTION": description_html,
        "CSS": _CSS,
        "RECORDS": _script_json(records),
        "META": _script_json(meta),
        "JS": _JS,
        "EXTRA": extra_section,
    }
    # One pass, so text that happens to look like a placeholder is never expanded.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _PAGE)


def _notes(records: list[Record]) -> list[list[Any]]:
    """``[record index, sentence, listed, html, plain]`` for every record narration can
    tell; ``html`` (the sentence with its Markdown rendered, escaped) and ``plain`` (the
    text without the markup, for SVG labels) are only there for a scenario's ``say``.

    ``listed`` marks the sentences of the narration list, exactly those ``narrate()``
    tells (the same :class:`Narrator`: a follower's commit or a single pre-vote answer is
    not listed); the others are shown only on hover. A malformed hand-made record gets no
    sentence rather than breaking the page.
    """
    notes: list[list[Any]] = []
    narrator = Narrator()
    for index, rec in enumerate(records):
        kind = rec.get("kind")
        if kind in _MESSAGE_KINDS:
            continue
        try:
            line = narrator.line(rec)
            listed = line.text if line is not None else None
            text = listed or narrate_record(rec)
        except (TypeError, ValueError, AttributeError):
            continue
        if not text:
            continue
        note: list[Any] = [index, text, 1 if listed else 0]
        if kind == "say":
            note += [render_inline(text), plain_text(text)]
        notes.append(note)
    return notes


def _script_json(value: Any) -> str:
    """JSON safe to embed in a ``<script type="application/json">`` element.

    Every ``<`` is written as ``\\u003c``: then no string in a record (``</script>``,
    ``<!--``) can end or confuse the script element, and ``JSON.parse`` reads it back
    unchanged. Non-finite floats, which JSON cannot carry, become strings.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=str)
    except ValueError:
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"),
                          default=str)
    return text.replace("<", "\\u003c")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="raftsim">
<title>@@TITLE@@</title>
<style>
@@CSS@@
</style>
</head>
<body>
<header class="rs-header">
<h1>@@TITLE@@</h1>
@@DESCRIPTION@@
<div class="rs-stats" id="rs-stats"></div>
</header>
<div class="rs-toolbar" role="toolbar">
<button type="button" id="rs-fit" title="Show the whole run (double-click the diagram)">Fit</button>
<button type="button" id="rs-zoom-out" title="Zoom out (-)">&minus;</button>
<button type="button" id="rs-zoom-in" title="Zoom in (+)">+</button>
<label><input type="checkbox" id="rs-show-heartbeats" checked> heartbeats</label>
<label><input type="checkbox" id="rs-show-messages" checked> messages</label>
<label><input type="checkbox" id="rs-show-drops" checked> dropped</label>
<span class="rs-range" id="rs-range"></span>
<span class="rs-hint">wheel: zoom &middot; drag: pan &middot; double-click: fit &middot;
click: pin details</span>
</div>
<div class="rs-legend" id="rs-legend"></div>
<main class="rs-layout">
<section class="rs-diagram-panel">
<div class="rs-diagram-wrap" id="rs-diagram-wrap"><svg id="rs-diagram" role="img"
aria-label="space-time diagram of the run"></svg></div>
<svg id="rs-overview" class="rs-overview"
aria-label="the whole run: drag the window to pan, drag outside it to pick a window"></svg>
<div class="rs-notice" id="rs-notice" hidden></div>
<section class="rs-logs" id="rs-logs" aria-label="each server's log">
<div class="rs-logs-head"><h2>Logs</h2><span class="rs-logs-when" id="rs-logs-when"></span>
</div>
<div class="rs-logs-key" id="rs-logs-key"></div>
<div class="rs-log-now" id="rs-log-now"></div>
<div class="rs-frames-wrap" id="rs-frames-wrap" hidden>
<h3>The logs at each step of the story</h3>
<div class="rs-frames" id="rs-frames"></div>
</div>
</section>
</section>
<aside class="rs-story">
<div class="rs-story-head"><h2>Narration</h2>
<input type="search" id="rs-story-filter" placeholder="filter" aria-label="filter narration">
</div>
<ol class="rs-story-list" id="rs-story-list"></ol>
</aside>
</main>
@@EXTRA@@
<div class="rs-tooltip" id="rs-tooltip" hidden></div>
<noscript><p class="rs-noscript">The diagram is drawn by JavaScript; the trace is in the
page source as JSON.</p></noscript>
<script type="application/json" id="raftsim-records">@@RECORDS@@</script>
<script type="application/json" id="raftsim-meta">@@META@@</script>
<script>
@@JS@@
</script>
</body>
</html>
"""

_CSS = r"""
:root {
  --ink: #212529; --muted: #868e96; --line: #e9ecef; --panel: #f8f9fa;
  --follower: #ced4da; --pre: #ffd43b; --candidate: #fd7e14; --leader: #2f9e44;
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: #fff;
  font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
}
.rs-header { padding: 14px 20px 8px; }
.rs-header h1 { font-size: 20px; margin: 0 0 4px; font-weight: 650; }
.rs-description { margin: 0 0 6px; color: #495057; max-width: 80em; }
.rs-description p, .rs-description ul, .rs-description ol { margin: 0 0 6px; }
.rs-description ul, .rs-description ol { padding-left: 22px; }
.rs-description code, .rs-story-list code, .rs-frame code {
  font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 92%;
  background: #f1f3f5; border-radius: 3px; padding: 0 3px; }
.rs-description a, .rs-story-list a, .rs-frame a { color: #1971c2; }
.rs-logs { margin-top: 14px; border-top: 1px solid var(--line); padding-top: 8px; }
.rs-logs-head { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.rs-logs-head h2 { font-size: 14px; margin: 0; }
.rs-logs-when { color: #495057; font-variant-numeric: tabular-nums; }
.rs-logs-key { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px;
  color: #495057; margin: 4px 0 6px; align-items: center; }
.rs-logs-key span { display: inline-flex; gap: 4px; align-items: center; }
.rs-log-now { overflow-x: auto; }
.rs-frames-wrap h3 { font-size: 13px; margin: 14px 0 6px; }
.rs-frames { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.rs-frame { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px;
  width: min-content; min-width: 280px; max-width: 100%; overflow-x: auto; cursor: pointer; }
.rs-frame:hover { border-color: #fab005; }
.rs-frame figcaption { font-size: 12px; margin-bottom: 4px; }
.rs-frame figcaption time { color: var(--muted); font-variant-numeric: tabular-nums;
  margin-right: 6px; }
.lg { display: block; }
.lg text { font-size: 11.5px; }
.lg .lg-idx { font-size: 10px; fill: #868e96; }
.lg .lg-name { font-size: 12px; font-weight: 650; }
.lg .lg-tag { font-size: 10.5px; fill: #868e96; }
.lg .lg-tag.leader { fill: #2b8a3e; font-weight: 650; }
.lg .lg-tag.removed { fill: #c92a2a; font-weight: 650; }
.lg .lg-row.off .lc, .lg .lg-row.removed .lc { opacity: .55; }
.lg .lg-commit { font-size: 10px; fill: #868e96; }
.lc rect { stroke-width: 1.3; }
.lc.c rect { stroke-width: 1.6; }
.lc.u rect { stroke-dasharray: 3 2; }
.lc.c text { font-weight: 650; }
.lc-snap { fill: #ae3ec9; }
.lc-conf { fill: #7048e8; }
.lc-was-mark { fill: #e03131; }
.lc.ghost rect { fill: #fff5f5; stroke: #e03131; stroke-dasharray: 2 2; }
.lc.ghost text { fill: #e03131; }
.lc.ghost path { stroke: #e03131; stroke-width: 1.5; }
.lc-block rect { fill: #f1f3f5; stroke: #adb5bd; }
.lc-block.u rect { stroke-dasharray: 3 2; }
.lc-block-t { font-size: 10.5px; fill: #495057; }
.rs-stats { color: var(--muted); font-size: 12px; }
.rs-toolbar {
  display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center;
  padding: 6px 20px; background: var(--panel);
  border-top: 1px solid var(--line); border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 5;
}
.rs-toolbar button {
  font: inherit; min-width: 30px; padding: 2px 10px; border: 1px solid #ced4da;
  border-radius: 5px; background: #fff; cursor: pointer;
}
.rs-toolbar button:hover { background: #f1f3f5; }
.rs-toolbar label { display: inline-flex; gap: 4px; align-items: center; cursor: pointer; }
.rs-range { font-variant-numeric: tabular-nums; color: #495057; }
.rs-hint { color: var(--muted); font-size: 11.5px; margin-left: auto; }
.rs-legend {
  display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 7px 20px; font-size: 12px;
  border-bottom: 1px solid var(--line);
}
.rs-legend .grp { display: inline-flex; flex-wrap: wrap; gap: 2px 10px; align-items: center; }
.rs-legend .grp > b { color: var(--muted); font-weight: 600; }
.rs-legend .it {
  display: inline-flex; gap: 4px; align-items: center; border: 0; background: none;
  font: inherit; padding: 1px 2px; color: inherit; border-radius: 4px;
}
.rs-legend button.it { cursor: pointer; }
.rs-legend button.it:hover { background: #f1f3f5; }
.rs-legend button.it[aria-pressed="false"] { opacity: .35; text-decoration: line-through; }
.rs-legend svg { display: block; }
.rs-layout { display: grid; grid-template-columns: minmax(0, 1fr) 360px; align-items: start; }
@media (max-width: 1050px) {
  .rs-layout { grid-template-columns: minmax(0, 1fr); }
  .rs-story { position: static; border-left: 0; border-top: 1px solid var(--line);
    max-height: 60vh; }
}
.rs-diagram-panel { padding: 6px 12px 14px 12px; min-width: 0; }
.rs-diagram-wrap { width: 100%; overflow: hidden; }
#rs-diagram { display: block; cursor: crosshair; user-select: none; touch-action: none; }
#rs-diagram.dragging { cursor: grabbing; }
.rs-overview { display: block; width: 100%; cursor: pointer; user-select: none;
  touch-action: none; margin-top: 4px; }
.rs-notice { margin: 6px 0 0 96px; color: #845ef7; font-size: 12px; }
.rs-story {
  border-left: 1px solid var(--line); position: sticky; top: 40px;
  display: flex; flex-direction: column; max-height: calc(100vh - 48px); min-height: 200px;
}
.rs-story-head { display: flex; align-items: center; gap: 8px; padding: 8px 12px 6px; }
.rs-story-head h2 { font-size: 14px; margin: 0; flex: 1; }
.rs-story-head input { font: inherit; width: 150px; padding: 2px 6px;
  border: 1px solid #ced4da; border-radius: 5px; }
.rs-story-list { list-style: none; margin: 0; padding: 0 0 10px; overflow-y: auto; flex: 1; }
.rs-story-list li {
  display: grid; grid-template-columns: 58px 34px 1fr; gap: 6px; padding: 2px 12px 2px 9px;
  border-left: 3px solid transparent; cursor: pointer; color: #868e96;
}
.rs-story-list li.inview { color: var(--ink); border-left-color: #dee2e6; }
.rs-story-list li:hover, .rs-story-list li.near { background: #fff9db; }
.rs-story-list li.sel { background: #fff3bf; border-left-color: #fab005; }
.rs-story-list li[hidden] { display: none; }
.rs-story-list time { font-variant-numeric: tabular-nums; font-size: 11.5px; padding-top: 1px;
  text-align: right; }
.rs-story-list b { font-weight: 600; }
.rs-story-list li.lead span { font-weight: 650; color: #2b8a3e; }
.rs-story-list li.fault span { color: #c92a2a; font-weight: 600; }
.rs-story-list li.heal span { color: #2b8a3e; font-weight: 600; }
.rs-story-list li.say span { font-style: italic; }
.rs-story-list li.api span { color: #5f3dc4; }
.rs-story-list li.bad span { color: #c92a2a; font-weight: 650; }
.rs-story-list li.ok span { color: #2b8a3e; }
.rs-story-empty { padding: 6px 12px; color: var(--muted); }
.rs-extra { padding: 10px 20px 24px; border-top: 1px solid var(--line); }
.rs-noscript { padding: 20px; color: #c92a2a; }
.rs-tooltip {
  position: fixed; z-index: 20; max-width: 460px; pointer-events: none;
  background: #fff; border: 1px solid #ced4da; border-radius: 7px; padding: 8px 10px;
  box-shadow: 0 6px 24px rgba(0, 0, 0, .16); font-size: 12px;
}
.rs-tooltip.pinned { pointer-events: auto; border-color: #fab005; }
.rs-tooltip .tt-h { font-weight: 650; font-size: 13px; display: flex; gap: 6px;
  align-items: center; }
.rs-tooltip .tt-t { color: var(--muted); font-variant-numeric: tabular-nums; }
.rs-tooltip .tt-s { margin: 4px 0 6px; }
.rs-tooltip .sw { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
.rs-tooltip table { border-collapse: collapse; font-size: 11.5px; }
.rs-tooltip th { text-align: left; color: var(--muted); font-weight: 500; padding: 0 10px 0 0;
  vertical-align: top; }
.rs-tooltip td { font-family: ui-monospace, "DejaVu Sans Mono", monospace; padding: 0;
  word-break: break-word; }
.rs-tooltip .tt-pin { color: var(--muted); font-size: 11px; margin-top: 4px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
  sans-serif; }
.ax text { font-size: 10.5px; fill: #868e96; }
.ax .base { stroke: #dee2e6; }
.ax .grid { stroke: #f1f3f5; }
.side-0 { fill: #e7f5ff; } .side-1 { fill: #fff4e6; } .side-2 { fill: #f3f0ff; }
.side-3 { fill: #e6fcf5; }
.wall { stroke: #e03131; stroke-width: 2; stroke-dasharray: 6 3; }
.cut { fill: #fff0f0; }
.cut-note { font-size: 10px; fill: #c92a2a; font-style: italic; }
.bar.removed { fill: #f1f3f5; stroke: #ced4da; stroke-dasharray: 3 2; }
.lane-label.removed { fill: #868e96; text-decoration: line-through; }
.lane-removed { font-size: 10.5px; fill: #c92a2a; font-weight: 650; }
.removed-mark circle { fill: #fff; stroke: #c92a2a; stroke-width: 1.8; }
.removed-mark path { stroke: #c92a2a; stroke-width: 1.8; }
.mk-append { fill: #1c7ed6; }
.log-pin { stroke: #1c7ed6; stroke-width: 1.5; stroke-dasharray: 5 3; }
.lane-label { font-size: 13px; font-weight: 650; }
.lane-guide { stroke: #f1f3f5; stroke-width: 1; }
.bar.follower { fill: var(--follower); }
.bar.pre-candidate { fill: var(--pre); }
.bar.candidate { fill: var(--candidate); }
.bar.leader { fill: var(--leader); }
.bar.paused { fill: url(#rs-hatch); }
.down { stroke: #adb5bd; stroke-width: 1.6; stroke-dasharray: 3 4; }
.absent { stroke: #e9ecef; stroke-width: 1; stroke-dasharray: 1 4; }
.seg-note { font-size: 10px; fill: #868e96; font-style: italic; }
.term { font-size: 10.5px; fill: #495057; }
.term.leader { fill: #2b8a3e; font-weight: 650; }
.term.candidate, .term.pre-candidate { fill: #d9480f; }
.msg { stroke-width: 1.3; fill: none; }
.msg.hb { stroke-width: 1; }
.msg.pre { stroke-dasharray: 6 3; }
.msg.refused { stroke-dasharray: 1.5 2.5; }
.msg.dropped { stroke-dasharray: 3 2; }
.msg.flight { stroke-dasharray: 2 4; opacity: .75; }
.dense .msg { stroke-width: .7; opacity: .35; stroke-dasharray: none; }
.xmark { stroke: #e03131; stroke-width: 2; fill: none; stroke-linecap: round; }
.mk-commit { fill: #343a40; }
.mk-commit-f { fill: #fff; stroke: #343a40; stroke-width: 1.2; }
.mk-timeout { fill: #fff; stroke: #e8590c; stroke-width: 1.5; }
.mk-vote { fill: #40c057; }
.mk-vote-no { fill: #adb5bd; }
.mk-ignored { fill: #fff; stroke: #adb5bd; stroke-width: 1.3; }
.mk-stepdown { fill: #e03131; }
.mk-config { fill: #7048e8; }
.mk-snapshot { fill: #ae3ec9; }
.mk-truncate { fill: #e03131; }
.mk-transfer { fill: #d6336c; }
.mk-crash { fill: #c92a2a; }
.mk-crash-x { fill: none; stroke: #fff; stroke-width: 1.8; stroke-linecap: round; }
.mk-start { fill: #2f9e44; }
.mk-other { fill: #868e96; }
.ann { stroke-width: 1; stroke-dasharray: 4 3; opacity: .8; }
.ann.fault { stroke: #e03131; } .ann.heal { stroke: #2f9e44; } .ann.api { stroke: #7048e8; }
.ann.say { stroke: #868e96; } .ann.ok { stroke: #2f9e44; } .ann.bad { stroke: #e03131; }
.ann.client { stroke: #1098ad; } .ann.other { stroke: #adb5bd; }
.alabel rect { stroke-width: 1; }
.alabel text { font-size: 11px; }
.alabel.fault rect { fill: #fff5f5; stroke: #ffc9c9; } .alabel.fault text { fill: #c92a2a; }
.alabel.heal rect { fill: #ebfbee; stroke: #b2f2bb; } .alabel.heal text { fill: #2b8a3e; }
.alabel.api rect { fill: #f3f0ff; stroke: #d0bfff; } .alabel.api text { fill: #5f3dc4; }
.alabel.say rect { fill: #f8f9fa; stroke: #dee2e6; }
.alabel.say text { fill: #343a40; font-style: italic; }
.alabel.ok rect { fill: #ebfbee; stroke: #8ce99a; } .alabel.ok text { fill: #2b8a3e; }
.alabel.bad rect { fill: #ffe3e3; stroke: #ff8787; }
.alabel.bad text { fill: #c92a2a; font-weight: 650; }
.alabel.client rect { fill: #e3fafc; stroke: #99e9f2; } .alabel.client text { fill: #0b7285; }
.alabel.other rect { fill: #f8f9fa; stroke: #dee2e6; } .alabel.other text { fill: #495057; }
.hl { fill: none; stroke: #fab005; stroke-width: 2.5; }
.hl-line { stroke-width: 3.5; opacity: .9; fill: none; }
.cursor { stroke: #495057; stroke-width: 1; stroke-dasharray: 2 2; opacity: .5; }
.cursor-t rect { fill: #343a40; } .cursor-t text { fill: #fff; font-size: 10.5px; }
.story-cursor { stroke: #fab005; stroke-width: 2; opacity: .9; }
.ov-bg { fill: #f8f9fa; stroke: #e9ecef; }
.ov-hist { fill: #a5d8ff; }
.ov-lead { stroke: #2f9e44; stroke-width: 1.5; }
.ov-fault { stroke: #e03131; stroke-width: 1.5; }
.ov-brush { fill: rgba(250, 176, 5, .14); stroke: #fab005; stroke-width: 1.5; cursor: grab; }
.ov-shade { fill: rgba(255, 255, 255, .6); }
.ov-handle { fill: #fab005; cursor: ew-resize; }
.ov-t { font-size: 10px; fill: #868e96; }
.empty-note { font-size: 13px; fill: #868e96; }
"""

_JS = r"""
(() => {
"use strict";
const $ = (id) => document.getElementById(id);
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);
const str = (v) => (v === null || v === undefined ? "" : String(v));
const num = (v) => { const x = Number(v); return Number.isFinite(x) ? x : 0; };
const f1 = (v) => Math.round(v * 10) / 10;

// ------------------------------------------------------------------ the data
const RAW = JSON.parse($("raftsim-records").textContent || "[]");
const META = JSON.parse($("raftsim-meta").textContent || "{}");
const REC = (Array.isArray(RAW) ? RAW : []).map((r) => (r && typeof r === "object" ? r : {}));
const SERVERS = (Array.isArray(META.servers) ? META.servers : []).map(String);
const LANE = new Map(SERVERS.map((s, k) => [s, k]));
const NOTE = new Map(), NOTE_HTML = new Map(), NOTE_PLAIN = new Map();
const STORY = [];
for (const n of Array.isArray(META.notes) ? META.notes : []) {
  NOTE.set(n[0], String(n[1]));
  if (n.length > 4) { NOTE_HTML.set(n[0], String(n[3])); NOTE_PLAIN.set(n[0], String(n[4])); }
  if (n[2]) STORY.push(n[0]);
}
const POS = new Array(REC.length);
const T = REC.map((r) => num(r.t));
const ORDER = REC.map((_, i) => i).sort((a, b) => T[a] - T[b] || a - b);
ORDER.forEach((i, p) => { POS[i] = p; });
STORY.sort((a, b) => T[a] - T[b] || a - b);
const STORY_T = STORY.map((i) => T[i]);
let T0 = Infinity, T1 = -Infinity;
for (const t of T) { if (t < T0) T0 = t; if (t > T1) T1 = t; }
if (!(T0 <= T1)) { T0 = 0; T1 = 1; }
if (T1 - T0 < 1e-6) T1 = T0 + 1;

const PALETTE = ["#1971c2", "#c2255c", "#2b8a3e", "#e67700", "#6741d9", "#0b7285",
  "#862e9c", "#5c940d", "#a61e4d", "#364fc7"];
const serverColor = (s) => (LANE.has(s) ? PALETTE[LANE.get(s) % PALETTE.length] : "#495057");
const COLOR = {
  vote: "#e8590c", "vote-resp": "#f59f00", append: "#1c7ed6", "append-resp": "#0ca678",
  "append-hb": "#74c0fc", "append-resp-hb": "#63e6be", snapshot: "#ae3ec9", other: "#d6336c",
};
const TYPE = {
  RequestVote: "vote", RequestVoteResponse: "vote-resp", AppendEntries: "append",
  AppendEntriesResponse: "append-resp", InstallSnapshot: "snapshot",
  InstallSnapshotResponse: "snapshot",
};
const ROLES = new Set(["follower", "pre-candidate", "candidate", "leader"]);

// Text is measured, never estimated from its length: a label's box is sized to its text
// and a label that does not fit where it belongs is shortened or left out, never clipped.
const SVG_NS = $("rs-diagram").namespaceURI;
const MEASURE = document.createElementNS(SVG_NS, "svg");
MEASURE.setAttribute("aria-hidden", "true");
MEASURE.style.cssText = "position:absolute;left:-10000px;top:0;width:10px;height:10px;" +
  "visibility:hidden";
document.body.appendChild(MEASURE);
const measured = new Map(), measurers = new Map();
function textW(s, tcls, gcls) {
  const key = `${gcls || ""}|${tcls || ""}|${s}`;
  let w = measured.get(key);
  if (w !== undefined) return w;
  let el = measurers.get(`${gcls || ""}|${tcls || ""}`);
  if (!el) {
    const g = document.createElementNS(SVG_NS, "g");
    if (gcls) g.setAttribute("class", gcls);
    el = document.createElementNS(SVG_NS, "text");
    if (tcls) el.setAttribute("class", tcls);
    g.appendChild(el);
    MEASURE.appendChild(g);
    measurers.set(`${gcls || ""}|${tcls || ""}`, el);
  }
  el.textContent = s;
  w = el.getComputedTextLength();
  measured.set(key, w);
  return w;
}
// the longest prefix of `s`, cut at a word when possible, that fits `max` px with "…"
function fitText(s, max, tcls, gcls) {
  if (textW(s, tcls, gcls) <= max) return s;
  let lo = 0, hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (textW(s.slice(0, mid) + "\u2026", tcls, gcls) <= max) lo = mid; else hi = mid - 1;
  }
  let cut = s.slice(0, lo);
  const sp = cut.lastIndexOf(" ");
  if (sp > lo * 0.6) cut = cut.slice(0, sp);
  return cut.replace(/[\s,;:]+$/, "") + "\u2026";
}

function fmtT(t) {
  const span = view.b - view.a;
  const d = span < 0.05 ? 6 : span < 2 ? 4 : 3;
  return t.toFixed(d) + " s";
}
function fmtDur(dt) {
  if (dt < 1) return (dt * 1000).toFixed(dt < 0.01 ? 3 : 1) + " ms";
  return dt.toFixed(3) + " s";
}

// ------------------------------------------------------------------ lanes: role over time
const LANES = SERVERS.map(() => ({ segs: [], marks: [] }));
const firstOf = new Map();
for (const i of ORDER) {
  const r = REC[i];
  const s = r.server == null ? (r.kind === "fault" ? str(r.target) : "") : str(r.server);
  if (s && !firstOf.has(s)) firstOf.set(s, i);
}
const ST = SERVERS.map((s) => {
  const f = firstOf.get(s);
  // nothing is known of a server before its first start, or if it never appears
  const absent = f === undefined || (REC[f].kind === "start" && T[f] > T0);
  return { up: !absent, absent, paused: false, removed: false, role: "follower", term: 0,
    leader: "", since: T0, i: -1 };
});
const skey = (x) => [x.up, x.absent, x.paused, x.removed, x.role, x.term, x.leader].join("|");
// every change, even one undone at the same instant, for the state at a record (logs)
const CHANGES = ST.map((st) => [{ p: -1, st }]);
function setState(k, t, i, patch) {
  const cur = ST[k];
  const next = Object.assign({}, cur, patch);
  if (skey(next) === skey(cur)) return;
  if (t > cur.since) LANES[k].segs.push(Object.assign({}, cur, { t1: t }));
  next.since = t;
  next.i = i;
  ST[k] = next;
  CHANGES[k].push({ p: i >= 0 ? POS[i] : -1, st: next });
}
const DOWN = { up: false, absent: false, paused: false, role: "follower", leader: "" };
const UP = { up: true, absent: false, paused: false, role: "follower", leader: "" };
const NO_MARK = new Set(["role", "pause", "resume", "apply", "config-committed"]);
const ANN = [];
let leaderCount = 0, faultCount = 0;

// Membership: a server left out of a committed configuration is removed from then on
// (the first server to commit that configuration, the leader, says when).
let members = null;
const configsSeen = new Set();
const REMOVALS = [];
function onConfigCommitted(r, t, i) {
  const index = str(r.index);
  if (configsSeen.has(index) || !Array.isArray(r.voters)) return;
  configsSeen.add(index);
  const next = new Set(r.voters.map(String).concat(
    Array.isArray(r.nonvoters) ? r.nonvoters.map(String) : []));
  const before = members || new Set(SERVERS.filter((s, k) => !ST[k].absent));
  SERVERS.forEach((s, k) => {
    if (before.has(s) && !next.has(s) && !ST[k].removed) {
      setState(k, t, i, { removed: true });
      REMOVALS.push({ k, t, i, server: s });
    } else if (next.has(s) && ST[k].removed) {
      setState(k, t, i, { removed: false });
    }
  });
  members = next;
}

// Network splits: each period between two changes to partitions, isolations and cuts
// becomes the sides it splits the servers into (a side talks only to itself).
const NETS = [];
const net = { groups: null, isolated: new Set(), cuts: [] };
let openNet = null;
function netChange(r, t, i) {
  const f = str(r.fault);
  if (f === "partition") {
    net.groups = new Map();
    (Array.isArray(r.groups) ? r.groups : []).forEach((g, n) => {
      for (const s of Array.isArray(g) ? g : [g]) net.groups.set(str(s), n);
    });
  } else if (f === "isolate") net.isolated.add(str(r.target));
  else if (f === "cut") net.cuts.push([str(r.source), str(r.target)]);
  else if (f === "heal") { net.groups = null; net.isolated = new Set(); net.cuts = []; }
  else return;
  if (openNet) { openNet.t1 = t; NETS.push(openNet); openNet = null; }
  const keyOf = (s) => (net.isolated.has(s) ? "i:" + s : net.groups === null ? "all" :
    net.groups.has(s) ? "g" + net.groups.get(s) : "a:" + s);
  const sideOf = new Map(), sides = [];
  const side = SERVERS.map((s) => {
    const key = keyOf(s);
    if (!sideOf.has(key)) { sideOf.set(key, sides.length); sides.push([]); }
    sides[sideOf.get(key)].push(s);
    return sideOf.get(key);
  });
  const cuts = net.cuts.filter(([a, b]) => LANE.has(a) && LANE.has(b));
  if (sides.length > 1 || cuts.length) {
    openNet = { t0: t, t1: T1, i, side, sides, cuts: cuts.slice(),
      label: sides.map((g) => g.join(",")).join("|") };
  }
}

// Each server's log, as the records that change it (replayed by logAt below).
const LOGEV = SERVERS.map(() => []);
const LOG_KINDS = new Set(["start", "crash", "append", "truncate", "commit", "snapshot",
  "snapshot-installed", "config"]);

function annInfo(r, i) {
  const kind = str(r.kind);
  if (kind === "fault") {
    const f = str(r.fault);
    let label = f + (r.target != null ? " " + str(r.target) : "");
    if (f === "partition" && Array.isArray(r.groups)) {
      label = "partition " + r.groups.map((g) => (Array.isArray(g) ? g.join(",") : str(g)))
        .join(" | ");
    } else if (f === "cut") {
      label = "cut " + str(r.source) + "\u2192" + str(r.target);
    }
    const good = f === "heal" || f === "restart" || f === "resume";
    return { cls: good ? "heal" : "fault", label };
  }
  if (kind === "api") {
    return { cls: "api", label: `${str(r.method)} ${str(r.path)} \u2192 ${str(r.status)}` };
  }
  if (kind === "say") {
    return { cls: "say", label: "\u201c" + (NOTE_PLAIN.get(i) ?? str(r.text)) + "\u201d" };
  }
  if (kind === "expect") {
    return r.ok ? { cls: "ok", label: "\u2713 " + str(r.text) }
      : { cls: "bad", label: "\u2717 " + str(r.text) };
  }
  if (kind === "client") return { cls: "client", label: str(r.text) };
  return { cls: "other", label: kind || "event" };
}

for (const i of ORDER) {
  const r = REC[i], t = T[i], kind = str(r.kind);
  if (kind === "send" || kind === "deliver" || kind === "drop") continue;
  if (r.server == null) {
    ANN.push(Object.assign({ t, i }, annInfo(r, i)));
    if (kind !== "fault") continue;
    faultCount++;
    const f = str(r.fault), k = LANE.get(str(r.target));
    if (k !== undefined) {
      if (f === "crash") setState(k, t, i, DOWN);
      else if (f === "restart") setState(k, t, i, UP);
      else if (f === "pause") setState(k, t, i, { paused: true });
      else if (f === "resume") setState(k, t, i, { paused: false });
    }
    netChange(r, t, i);
    continue;
  }
  const k = LANE.get(str(r.server));
  if (k === undefined) continue;
  if (LOG_KINDS.has(kind)) LOGEV[k].push({ p: POS[i], t, i, kind, r });
  if (kind === "config-committed") onConfigCommitted(r, t, i);
  const term = num(r.term);
  const tp = term > ST[k].term ? { term } : {};
  if (kind === "start") setState(k, t, i, Object.assign({}, UP, tp));
  else if (kind === "crash") setState(k, t, i, DOWN);
  else if (kind === "pause") setState(k, t, i, { paused: true });
  else if (kind === "resume") setState(k, t, i, { paused: false });
  else if (kind === "role") {
    const role = ROLES.has(str(r.role)) ? str(r.role) : "follower";
    if (role === "leader") leaderCount++;
    setState(k, t, i, Object.assign({ up: true, absent: false, role, leader: str(r.leader) },
      tp));
  } else if (term > ST[k].term) setState(k, t, i, { term });
  if (!NO_MARK.has(kind)) LANES[k].marks.push({ t, i, kind, lead: ST[k].role === "leader" });
}
if (openNet) NETS.push(openNet);
ST.forEach((cur, k) => {
  if (T1 > cur.since || LANES[k].segs.length === 0) {
    LANES[k].segs.push(Object.assign({}, cur, { t1: Math.max(T1, cur.since) }));
  }
});

// ------------------------------------------------------------------ messages
const sendOf = new Map();
let sendCount = 0, dropCount = 0;
for (const i of ORDER) {
  const r = REC[i];
  if (r.kind === "send") {
    sendCount++;
    if (r.id != null && !sendOf.has(str(r.id))) sendOf.set(str(r.id), i);
  } else if (r.kind === "drop") dropCount++;
}
// Heartbeats: AppendEntries without entries, and the replies to them (a reply carries no
// entry count, so it is a heartbeat reply when the last AppendEntries its sender got from
// the leader was one; failed replies stay visible, they drive the log back-off).
const HB = new Set();
const lastHb = new Map();
for (const i of ORDER) {
  const r = REC[i];
  if (r.kind === "deliver") {
    const si = r.id == null ? undefined : sendOf.get(str(r.id));
    if (si !== undefined && REC[si].msg === "AppendEntries") {
      lastHb.set(str(REC[si].to) + ">" + str(REC[si].server), REC[si].n === 0);
    }
  } else if (r.kind === "send") {
    if (r.msg === "AppendEntries" && r.n === 0) HB.add(i);
    else if (r.msg === "AppendEntriesResponse" && r.ok !== false &&
             lastHb.get(str(r.server) + ">" + str(r.to))) HB.add(i);
  }
}
const MSGS = [];
function addMsg(si, ei, src, dst, t0, t1, end) {
  const r = si >= 0 ? REC[si] : REC[ei];
  const msg = str(r.msg) || "message";
  const type = TYPE[msg] || "other";
  const hb = si >= 0 && HB.has(si);
  let cls = "msg";
  if (hb) cls += " hb";
  if (si >= 0 && r.pre) cls += " pre";
  if (si >= 0 && (r.granted === false || r.ok === false)) cls += " refused";
  if (end === "drop") cls += " dropped";
  if (end === "flight") cls += " flight";
  const ck = hb && (type === "append" || type === "append-resp") ? type + "-hb" : type;
  MSGS.push({ si, ei, src, dst, a: LANE.get(src), b: LANE.get(dst), t0, t1, end, msg, type,
    hb, cls, ck });
}
const ended = new Set();
for (const i of ORDER) {
  const r = REC[i];
  if (r.kind !== "deliver" && r.kind !== "drop") continue;
  const si = r.id == null ? undefined : sendOf.get(str(r.id));
  if (si !== undefined) {
    ended.add(si);
    addMsg(si, i, str(REC[si].server), str(REC[si].to), T[si], Math.max(T[i], T[si]), r.kind);
  } else if (r.kind === "deliver") {
    addMsg(-1, i, str(r.from), str(r.server), T[i], T[i], "deliver");
  } else {
    addMsg(-1, i, str(r.server), str(r.to), T[i], T[i], "drop");
  }
}
let flightCount = 0;
for (const i of ORDER) {
  if (REC[i].kind === "send" && !ended.has(i)) {
    flightCount++;
    addMsg(i, -1, str(REC[i].server), str(REC[i].to), T[i], Math.max(T1, T[i]), "flight");
  }
}

// ------------------------------------------------------------------ logs
// A server's log at ORDER position P: replay its log records up to P. An append record
// carries the whole stored tail from its first index (a conflicting suffix is removed in
// the same step, its truncate record follows), so the log becomes its prefix plus the
// appended entries; what that removed is kept to show the truncation.
function logAt(k, P) {
  const st = { terms: [], commit: 0, snap: 0, conf: new Set(), was: new Map(), ghosts: [],
    up: true, started: false, lastAppend: null };
  const cut = (from, t) => {
    const gone = [];
    for (let x = from; x <= st.terms.length; x++) gone.push([x, st.terms[x - 1]]);
    st.terms.length = Math.max(0, from - 1);
    for (const c of [...st.conf]) if (c >= from) st.conf.delete(c);
    for (const x of [...st.was.keys()]) if (x >= from) st.was.delete(x);
    return gone.map(([index, term]) => ({ index, term, t }));
  };
  for (const e of LOGEV[k]) {
    if (e.p > P) break;
    const r = e.r;
    switch (e.kind) {
      case "start": {
        st.up = true;
        st.started = true;
        const n = num(r.last_index);
        while (st.terms.length < n) st.terms.push(null);
        if (n > 0 && r.last_term !== undefined && st.terms[n - 1] === null) {
          st.terms[n - 1] = num(r.last_term);
        }
        st.commit = num(r.commit);
        break;
      }
      case "crash": st.up = false; break;
      case "append": {
        const from = Math.max(1, num(r.from)), to = Math.max(from - 1, num(r.to));
        const terms = Array.isArray(r.terms) ? r.terms : [];
        const gone = cut(from, e.t);
        while (st.terms.length < from - 1) st.terms.push(null);
        for (let x = from; x <= to; x++) {
          st.terms.push(terms.length ? num(terms[x - from]) : null);
        }
        for (const g of gone) {
          if (g.index <= to && g.term !== st.terms[g.index - 1]) st.was.set(g.index, g);
        }
        const beyond = gone.filter((g) => g.index > to);
        st.ghosts = beyond.length ? beyond : st.ghosts.filter((g) => g.index > to);
        st.lastAppend = e;
        break;
      }
      case "truncate": {
        // told after the append that replaced the suffix; alone, it removes it itself
        const a = st.lastAppend;
        if (a && a.t === e.t && num(a.r.from) <= num(r.index)) break;
        st.ghosts = cut(num(r.index), e.t);
        break;
      }
      case "commit": st.commit = num(r.index); break;
      case "snapshot": st.snap = Math.max(st.snap, num(r.index)); break;
      case "snapshot-installed": {
        // the snapshot holds committed entries, the same on every server: their terms
        // are read from the sender's log at that moment
        const n = num(r.index), src = LANE.get(str(r.source));
        const from = src === undefined || src === k ? null : logAt(src, e.p).terms;
        st.snap = n;
        st.commit = Math.max(st.commit, n);
        while (st.terms.length < n) st.terms.push(null);
        for (let x = 1; x <= n; x++) {
          if (from && from[x - 1] !== null && from[x - 1] !== undefined) {
            st.terms[x - 1] = from[x - 1];
          }
        }
        break;
      }
      case "config": st.conf.add(num(r.index)); break;
      default: break;
    }
  }
  return st;
}
// the ORDER position of the last record at or before t
function posAt(t) {
  let lo = 0, hi = ORDER.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (T[ORDER[mid]] <= t) lo = mid + 1; else hi = mid;
  }
  return lo - 1;
}
// a server's lane state at ORDER position P (records at the same time count in order)
function segAt(k, P) {
  let found = null;
  for (const c of CHANGES[k]) {
    if (found && c.p > P) break;
    found = c.st;
  }
  return found;
}
const TERM_FILL = ["#e7f5ff", "#fff3bf", "#e6fcf5", "#ffe8cc", "#f3f0ff", "#ffdeeb",
  "#e3fafc", "#f4fce3", "#fff0f6", "#edf2ff"];
const TERM_LINE = ["#1c7ed6", "#e67700", "#0ca678", "#e8590c", "#7048e8", "#d6336c",
  "#1098ad", "#5c940d", "#c2255c", "#4263eb"];
const termHue = (term) => (term === null ? -1 : Math.abs(num(term)) % TERM_FILL.length);
const CW = 24, CH = 20, CGAP = 3;
const LOG_TAGS = ["leader", "crashed", "removed", "not started"];
function logLeft() {
  let w = 0;
  for (const s of SERVERS) w = Math.max(w, textW(s, "lg-name"));
  let tw = 0;
  for (const tag of LOG_TAGS) tw = Math.max(tw, textW(tag, "lg-tag"));
  return Math.ceil(18 + w + 8 + tw + 12);
}
// The logs of every server at position P as an SVG: one row per server, one box per
// index with the entry's term inside; committed boxes are filled, uncommitted ones dashed;
// an entry that replaced a removed one shows the removed term struck out in its corner,
// and removed entries past the end of the log are drawn as struck-out ghosts.
function logGrid(P, maxW) {
  const t = P >= 0 ? T[ORDER[P]] : T0;
  const states = SERVERS.map((_, k) => logAt(k, P));
  let last = 0;
  for (const st of states) {
    last = Math.max(last, st.terms.length);
    for (const g of st.ghosts) last = Math.max(last, g.index);
  }
  const left = logLeft(), step = CW + CGAP;
  const fit = Math.max(4, Math.floor((maxW - left - 70) / step));
  // a long log shows its start as one block, so the recent entries stay readable
  const first = last > fit ? last - fit + 2 : 1;
  const blockW = first > 1 ? textW(`1\u2013${first - 1}`, "lc-block-t") + 12 : 0;
  const x0 = left + (first > 1 ? blockW + CGAP : 0);
  const cx = (x) => x0 + (x - first) * step;
  const top = 16;
  const width = Math.ceil(cx(Math.max(last, first - 1) + 1) + 70);
  const height = top + SERVERS.length * (CH + 6) + 4;
  const out = [`<svg class="lg" width="${width}" height="${height}" viewBox="0 0 ${width}` +
    ` ${height}" data-pos="${P}" data-t="${t}" role="img"` +
    ` aria-label="the log of every server at ${t.toFixed(3)} s">`];
  for (let x = first; x <= last; x++) {
    if (last - first > 30 && x % 5 !== 0 && x !== first && x !== last) continue;
    out.push(`<text class="lg-idx" x="${f1(cx(x) + CW / 2)}" y="11" text-anchor="middle">` +
      `${x}</text>`);
  }
  SERVERS.forEach((s, k) => {
    const st = states[k], y = top + k * (CH + 6);
    const seg = segAt(k, P);
    let tag = "", tcls = "";
    if (!st.started && (!seg || seg.absent)) { tag = "not started"; tcls = "off"; }
    else if (seg && seg.removed) { tag = "removed"; tcls = "removed"; }
    else if (!st.up || (seg && !seg.up)) { tag = "crashed"; tcls = "off"; }
    else if (seg && seg.role === "leader") { tag = "leader"; tcls = "leader"; }
    out.push(`<g class="lg-row${tcls ? " " + tcls : ""}" data-server="${esc(s)}"` +
      ` data-commit="${st.commit}" data-last="${st.terms.length}">`);
    out.push(`<circle cx="9" cy="${y + CH / 2}" r="4.5" fill="${serverColor(s)}"/>` +
      `<text class="lg-name" x="18" y="${y + CH / 2 + 4.5}">${esc(s)}</text>`);
    if (tag) {
      out.push(`<text class="lg-tag ${tcls}" x="${f1(18 + textW(s, "lg-name") + 8)}"` +
        ` y="${y + CH / 2 + 4}">${esc(tag)}</text>`);
    }
    if (first > 1 && st.terms.length >= 1) {
      const n = Math.min(first - 1, st.terms.length);
      const cls = st.commit >= n ? "c" : "u";
      out.push(`<g class="lc-block ${cls}"><title>${esc(s)}: indexes 1\u2013${n}` +
        `${st.commit >= n ? ", committed" : ""}</title><rect x="${left}" y="${y}"` +
        ` width="${f1(blockW)}" height="${CH}" rx="3"/><text class="lc-block-t"` +
        ` x="${f1(left + blockW / 2)}" y="${y + CH / 2 + 4}" text-anchor="middle">` +
        `1\u2013${n}</text></g>`);
    }
    for (let x = first; x <= st.terms.length; x++) {
      const term = st.terms[x - 1], h = termHue(term), committed = x <= st.commit;
      const status = committed ? "committed" : "not committed";
      const extra = (x <= st.snap ? " snap" : "") + (st.conf.has(x) ? " conf" : "");
      const snapBar = x <= st.snap ? `<rect class="lc-snap" x="${f1(cx(x) + 2)}" y="${y + 2}"` +
        ` width="${CW - 4}" height="2"/>` : "";
      const was = st.was.get(x);
      const tt = `${s}: index ${x}, term ${term === null ? "unknown" : term}, ${status}` +
        (x <= st.snap ? ", in a snapshot" : "") +
        (st.conf.has(x) ? ", a configuration entry" : "") +
        (was ? `; it replaced an entry of term ${was.term} removed at ${was.t.toFixed(3)} s`
          : "");
      const fill = committed ? (h < 0 ? "#e9ecef" : TERM_FILL[h]) : "#fff";
      const line = h < 0 ? "#868e96" : TERM_LINE[h];
      out.push(`<g class="lc ${committed ? "c" : "u"}${extra}" data-index="${x}"` +
        ` data-term="${term === null ? "" : term}"><title>${esc(tt)}</title>` +
        `<rect x="${f1(cx(x))}" y="${y}" width="${CW}" height="${CH}" rx="3"` +
        ` fill="${fill}" stroke="${line}"/><text x="${f1(cx(x) + CW / 2)}"` +
        ` y="${y + CH / 2 + 4}" text-anchor="middle" fill="${committed ? "#212529" : line}">` +
        `${term === null ? "?" : term}</text>` +
        snapBar + (was ? `<path class="lc-was-mark" d="M${f1(cx(x) + CW - 9)} ${y}h9v9z"/>`
          : "") +
        (st.conf.has(x) ? `<rect class="lc-conf" x="${f1(cx(x) + 2)}" y="${y + CH - 4}"` +
          ` width="${CW - 4}" height="2"/>` : "") + "</g>");
    }
    for (const g of st.ghosts) {
      if (g.index < first || g.index <= st.terms.length) continue;
      out.push(`<g class="lc ghost" data-index="${g.index}" data-term="${g.term ?? ""}">` +
        `<title>${esc(s)}: the entry of term ${g.term} at index ${g.index} was removed at` +
        ` ${g.t.toFixed(3)} s (it conflicted with the leader's log)</title>` +
        `<rect x="${f1(cx(g.index))}" y="${y}" width="${CW}" height="${CH}" rx="3"/>` +
        `<text x="${f1(cx(g.index) + CW / 2)}" y="${y + CH / 2 + 4}" text-anchor="middle">` +
        `${g.term === null ? "?" : g.term}</text><path d="M${f1(cx(g.index) + 3)}` +
        ` ${y + CH - 3}L${f1(cx(g.index) + CW - 3)} ${y + 3}"/></g>`);
    }
    const end = cx(Math.max(st.terms.length, first - 1) + 1);
    if (st.started || st.terms.length) {
      out.push(`<text class="lg-commit" x="${f1(end + 2)}" y="${y + CH / 2 + 4}">commit ` +
        `${st.commit}</text>`);
    }
    out.push("</g>");
  });
  out.push("</svg>");
  return out.join("");
}

// ------------------------------------------------------------------ geometry and view
const wrap = $("rs-diagram-wrap"), svg = $("rs-diagram"), ov = $("rs-overview");
const tip = $("rs-tooltip"), notice = $("rs-notice"), storyEl = $("rs-story-list");
const RIGHT = 16, AXIS_H = 22, ROW_H = 18, OV_H = 46, DENSE = 2000;
// room for the longest server name (and its "removed" tag), so no lane label is cut
const LEFT = Math.max(96, Math.ceil(Math.max(0, ...SERVERS.map((s) =>
  Math.max(textW(s, "lane-label"), REMOVALS.length ? textW("removed", "lane-removed") : 0)))
  + 25 + 14));
const LANE_H = SERVERS.length <= 6 ? 66 : SERVERS.length <= 12 ? 46 : 32;
const SIDES = 4;
// appends and truncations get their own row under the lane when there is room
const LOG_DY = LANE_H >= 60 ? 25 : 14;
// set once the annotation rows are known (as many as the whole run needs, up to 4)
let ANN_ROWS = 0, TOP = 0, H = 0;
const laneY = (k) => TOP + k * LANE_H + LANE_H / 2;
// The view [a, b] maps onto the lanes less an inner margin, so the first and last
// events are not cut in half by the clip.
const INSET = 12;
const LO = T0, HI = T1;
const MIN_SPAN = Math.max((HI - LO) * 1e-6, 1e-7);
const view = { a: LO, b: HI };
let W = 900;
const X = (t) => LEFT + INSET + ((t - view.a) / (view.b - view.a)) * (W - LEFT - RIGHT -
  2 * INSET);
const tAt = (x) => view.a + ((x - LEFT - INSET) / (W - LEFT - RIGHT - 2 * INSET)) *
  (view.b - view.a);
const pxToT = (dx) => (dx / (W - LEFT - RIGHT - 2 * INSET)) * (view.b - view.a);
const show = { vote: true, "vote-resp": true, append: true, "append-resp": true,
  snapshot: true, other: true, hb: true, drops: true, messages: true };

let pending = false, followStory = false;
function schedule() {
  if (!pending) { pending = true; requestAnimationFrame(render); }
}
function setView(a, b, fromDiagram) {
  let span = Math.min(Math.max(b - a, MIN_SPAN), HI - LO);
  if (!Number.isFinite(span) || span <= 0) span = HI - LO;
  let lo = Number.isFinite(a) ? a : LO;
  if (lo < LO) lo = LO;
  if (lo + span > HI) lo = HI - span;
  view.a = lo;
  view.b = lo + span;
  if (fromDiagram) followStory = true;
  schedule();
}
function zoomAt(t, factor) {
  setView(t - (t - view.a) * factor, t - (t - view.a) * factor + (view.b - view.a) * factor,
    true);
}

function clipSeg(xa, ya, xb, yb, lo, hi) {
  if ((xa < lo && xb < lo) || (xa > hi && xb > hi)) return null;
  if (xa === xb) return [xa, ya, xb, yb];
  const dx = xb - xa, p = (lo - xa) / dx, q = (hi - xa) / dx;
  const s = Math.max(0, Math.min(p, q)), e = Math.min(1, Math.max(p, q));
  if (s > e) return null;
  return [xa + s * dx, ya + s * (yb - ya), xa + e * dx, ya + e * (yb - ya)];
}

function niceStep(span, px) {
  const raw = span / Math.max(1, px / 95);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

function shape(kind, x, y) {
  switch (kind) {
    case "diamond": return `M${f1(x)} ${f1(y - 4.5)}l4.5 4.5l-4.5 4.5l-4.5 -4.5z`;
    case "square": return `M${f1(x - 3.5)} ${f1(y - 3.5)}h7v7h-7z`;
    case "tri-down": return `M${f1(x - 4.5)} ${f1(y - 3.5)}h9l-4.5 7.5z`;
    case "tri-right": return `M${f1(x - 1)} ${f1(y - 6)}l7 6l-7 6z`;
    case "x": return `M${f1(x - 2.8)} ${f1(y - 2.8)}l5.6 5.6M${f1(x + 2.8)} ${f1(y - 2.8)}` +
      "l-5.6 5.6";
    case "cell": return `M${f1(x - 3)} ${f1(y - 4)}h6v8h-6z`;
    case "tri-left": return `M${f1(x + 4)} ${f1(y - 5)}v10l-8 -5z`;
    default: {
      const r = kind === "dot" ? 2.6 : kind === "big" ? 6.5 : 3.4;
      return `M${f1(x - r)} ${f1(y)}a${r} ${r} 0 1 0 ${2 * r} 0a${r} ${r} 0 1 0 ${-2 * r} 0z`;
    }
  }
}
function markStyle(m) {
  const r = REC[m.i];
  switch (m.kind) {
    case "commit": return ["diamond", m.lead ? "mk-commit" : "mk-commit-f", 14];
    case "election-timeout": return ["circle", "mk-timeout", 14];
    case "vote": return ["dot", r.granted ? "mk-vote" : "mk-vote-no", 14];
    case "vote-ignored": return ["dot", "mk-ignored", 14];
    case "step-down": return ["tri-down", "mk-stepdown", 14];
    case "config": case "config-committed": return ["square", "mk-config", 14];
    case "snapshot": case "snapshot-installed": case "send-snapshot":
      return ["circle", "mk-snapshot", 14];
    case "append": return ["cell", "mk-append", LOG_DY];
    case "truncate": return ["tri-left", "mk-truncate", LOG_DY];
    case "timeout-now": case "transfer-start": case "transfer-aborted":
      return ["circle", "mk-transfer", 14];
    case "crash": return ["big", "mk-crash", 0];
    case "start": return ["tri-right", "mk-start", 0];
    default: return ["dot", "mk-other", 14];
  }
}

function defs(x0, x1) {
  const out = ["<defs>"];
  for (const [k, c] of Object.entries(COLOR)) {
    out.push(`<marker id="rs-ah-${k}" viewBox="0 0 10 10" refX="9.5" refY="5"` +
      ` markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse"` +
      ` orient="auto"><path d="M0 0L10 5L0 10z" fill="${c}"/></marker>`);
  }
  out.push(`<marker id="rs-ah-open" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8"` +
    ` markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M1 1L9 5L1 9"` +
    ` fill="none" stroke="#868e96" stroke-width="1.5"/></marker>`);
  out.push(`<pattern id="rs-hatch" width="6" height="6" patternUnits="userSpaceOnUse"` +
    ` patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#343a40"` +
    ` stroke-width="2" opacity=".45"/></pattern>`);
  out.push(`<clipPath id="rs-clip"><rect x="${x0}" y="0" width="${Math.max(0, x1 - x0)}"` +
    ` height="${H}"/></clipPath>`);
  out.push("</defs>");
  return out.join("");
}

// Annotation labels go in the first row with room; those finding none are left out
// (their line and tooltip remain).
function placeLabels(list, rows, x0, x1) {
  const rowEnd = new Array(rows).fill(-Infinity);
  const placed = [];
  // a label may take up to 45% of the width; a longer one ends with "…" (its whole text
  // is in the tooltip and the narration); its box is always sized to the measured text
  const max = Math.max(120, (x1 - x0) * 0.45);
  for (const n of list) {
    const label = fitText(n.label, max, "", "alabel " + n.cls);
    const w = textW(label, "", "alabel " + n.cls) + 12;
    let x = X(n.t);
    if (x + w > x1) x = Math.max(x0, x - w);
    const row = rowEnd.findIndex((e) => e < x - 3);
    if (row < 0) continue;
    rowEnd[row] = x + w;
    placed.push({ n, label, x, w, row });
  }
  return placed;
}
W = Math.max(360, Math.floor(wrap.clientWidth || 900));
if (ANN.length) {
  ANN_ROWS = 1 + placeLabels(ANN, 4, LEFT, W - RIGHT).reduce((m, p) => Math.max(m, p.row), 0);
}
TOP = AXIS_H + ANN_ROWS * ROW_H + (ANN_ROWS ? 12 : 8);
H = TOP + Math.max(1, SERVERS.length) * LANE_H + 6;

// ------------------------------------------------------------------ drawing
let hits = [];
function render() {
  pending = false;
  W = Math.max(360, Math.floor(wrap.clientWidth || 900));
  const x0 = LEFT, x1 = W - RIGHT, a = view.a, b = view.b;
  hits = [];
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const out = [defs(x0, x1)];

  // network splits: each side of a partition tinted its own colour, a red wall between
  // neighbouring lanes on different sides; a one-way cut marks its sender's lane
  out.push('<g clip-path="url(#rs-clip)">');
  for (const p of NETS) {
    if (p.t1 < a || p.t0 > b) continue;
    const l = Math.max(x0, X(p.t0)), r = Math.min(x1, X(p.t1)), w = f1(Math.max(1, r - l));
    out.push(`<g class="partition" data-groups="${esc(p.label)}" data-t0="${p.t0}">`);
    if (p.sides.length > 1) {
      SERVERS.forEach((s, k) => {
        const y = laneY(k) - LANE_H / 2;
        out.push(`<rect class="side side-${p.side[k] % SIDES}" data-server="${esc(s)}"` +
          ` data-side="${esc(p.sides[p.side[k]].join(","))}" x="${f1(l)}" y="${f1(y)}"` +
          ` width="${w}" height="${LANE_H}"/>`);
        if (k > 0 && p.side[k] !== p.side[k - 1]) {
          out.push(`<line class="wall" x1="${f1(l)}" x2="${f1(r)}" y1="${f1(y)}"` +
            ` y2="${f1(y)}"/>`);
        }
      });
    }
    for (const [src, dst] of p.cuts) {
      const y = laneY(LANE.get(src)) - LANE_H / 2;
      out.push(`<rect class="cut" data-cut="${esc(src)}>${esc(dst)}" x="${f1(l)}"` +
        ` y="${f1(y)}" width="${w}" height="${LANE_H}"/>`);
      const note = `no messages to ${dst}`;
      const nx = Math.max(l, x0) + 4;
      if (nx + textW(note, "cut-note") <= Math.min(r, x1) - 2) {
        out.push(`<text class="cut-note" x="${f1(nx)}" y="${f1(y + LANE_H - 5)}">` +
          `${esc(note)}</text>`);
      }
    }
    out.push("</g>");
  }
  out.push("</g>");

  // time axis
  const step = niceStep(b - a, x1 - x0);
  const dec = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  out.push('<g class="ax">');
  out.push(`<line class="base" x1="${x0}" x2="${x1}" y1="${AXIS_H}" y2="${AXIS_H}"/>`);
  for (let n = Math.ceil(a / step), c = 0; n * step <= b && c < 400; n++, c++) {
    const x = f1(X(n * step));
    out.push(`<line class="grid" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H}"/>` +
      `<line class="base" x1="${x}" x2="${x}" y1="${AXIS_H - 4}" y2="${AXIS_H}"/>` +
      `<text x="${x}" y="${AXIS_H - 8}" text-anchor="middle">${(n * step).toFixed(dec)}s` +
      `</text>`);
  }
  out.push("</g>");

  // lanes
  SERVERS.forEach((s, k) => {
    const y = laneY(k);
    out.push(`<g class="lane" data-lane="${esc(s)}">`);
    const gone = ST[k].removed;
    out.push(`<circle cx="14" cy="${y}" r="5" fill="${serverColor(s)}"/>` +
      `<text class="lane-label${gone ? " removed" : ""}" x="25" y="${y + 4.5}">${esc(s)}` +
      "</text>" + (gone ? `<text class="lane-removed" x="25" y="${y + 18}">removed</text>`
        : ""));
    out.push('<g clip-path="url(#rs-clip)">');
    out.push(`<line class="lane-guide" x1="${x0}" x2="${x1}" y1="${y}" y2="${y}"/>`);
    let prevTerm = null, prevRole = null, labelEnd = -Infinity, first = true;
    for (const g of LANES[k].segs) {
      const visible = !(g.t1 < a || g.since > b);
      if (visible) {
        const l = Math.max(x0 - 2, X(g.since)), r = Math.min(x1 + 2, X(g.t1));
        const w = Math.max(0.8, r - l);
        const note = (text, ny) => {
          const nx = Math.max(l, x0) + 4;
          if (nx + textW(text, "seg-note") <= Math.min(r, x1) - 4) {
            out.push(`<text class="seg-note" x="${f1(nx)}" y="${ny}">${text}</text>`);
          }
        };
        if (g.absent) {
          out.push(`<line class="absent" x1="${f1(l)}" x2="${f1(r)}" y1="${y}" y2="${y}"/>`);
        } else if (g.removed) {
          out.push(`<rect class="bar removed" x="${f1(l)}" y="${y - 5}" width="${f1(w)}"` +
            ' height="10"/>');
          note(g.up ? "removed from the configuration" : "removed, down", y - 8);
        } else if (!g.up) {
          out.push(`<line class="down" x1="${f1(l)}" x2="${f1(r)}" y1="${y}" y2="${y}"/>`);
          note("crashed", y - 6);
        } else {
          out.push(`<rect class="bar ${g.role}" x="${f1(l)}" y="${y - 5}" width="${f1(w)}"` +
            ` height="10" rx="2"/>`);
          if (g.paused) {
            out.push(`<rect class="bar paused" x="${f1(l)}" y="${y - 5}" width="${f1(w)}"` +
              ` height="10"/>`);
            note("paused", y + 17);
          }
        }
        hits.push({ k: "bar", x0: l, x1: r, y, g, lane: k });
        if (g.up && !g.removed && (first || g.term !== prevTerm ||
                     (g.role !== prevRole && g.role !== "follower"))) {
          // a label crowded out by the previous one moves right, within its segment; if
          // even "term N" does not fit there it is left out (the bar's tooltip tells it)
          const lx = Math.max(Math.max(l, x0) + 2, labelEnd + 8);
          const room = Math.min(r, x1) - 2 - lx;
          const cls = "term " + g.role;
          const text = ["term " + g.term + (g.role !== "follower" ? " \u00b7 " + g.role : ""),
            "term " + g.term].find((c) => textW(c, cls) <= room);
          if (text) {
            out.push(`<text class="${cls}" x="${f1(lx)}" y="${y - 9}">${esc(text)}</text>`);
            labelEnd = lx + textW(text, cls);
          }
          first = false;
        }
      }
      if (g.up) { prevTerm = g.term; prevRole = g.role; }
    }
    out.push("</g></g>");
  });
  if (!SERVERS.length) {
    out.push(`<text class="empty-note" x="${x0 + 8}" y="${TOP + 24}">no servers</text>`);
  } else if (!REC.length) {
    out.push(`<text class="empty-note" x="${x0 + 8}" y="${laneY(0) - 12}">` +
      "the trace is empty</text>");
  }

  // annotation lines
  const visAnn = ANN.filter((n) => n.t >= a && n.t <= b);
  out.push("<g>");
  for (const n of visAnn) {
    const x = f1(X(n.t));
    out.push(`<line class="ann ${n.cls}" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H - 2}"/>`);
    hits.push({ k: "ann", x: X(n.t), y0: AXIS_H, y1: H, n });
  }
  out.push("</g>");

  // messages
  const vis = [];
  if (show.messages) {
    for (let j = 0; j < MSGS.length; j++) {
      const m = MSGS[j];
      if (m.a === undefined || m.b === undefined) continue;
      if (!show[m.type] || (m.hb && !show.hb) || (m.end === "drop" && !show.drops)) continue;
      if (m.t0 > b || m.t1 < a - (b - a) * 0.01) continue;
      vis.push(j);
    }
  }
  const dense = vis.length > DENSE;
  const byColor = {};
  let xs = "";
  out.push(`<g clip-path="url(#rs-clip)" class="${dense ? "dense" : "msgs"}">`);
  for (const j of vis) {
    const m = MSGS[j];
    const ya = laneY(m.a), yb = laneY(m.b), xa = X(m.t0);
    let xe = X(m.t1), ye = yb;
    if (m.end === "drop") {
      // halfway, snapped to the gap between two lanes so the X never sits on a lane;
      // a message lost as it was sent gets a short stub, longer for farther targets
      const gaps = Math.ceil(Math.abs(m.b - m.a) / 2) - 0.5;
      xe = Math.max(xe, xa + 10 + 8 * Math.abs(m.b - m.a));
      ye = ya + Math.sign(yb - ya) * Math.max(0, gaps) * LANE_H;
    }
    const sg = clipSeg(xa, ya, xe, ye, x0 - 12, x1 + 12);
    if (!sg) continue;
    const endIn = Math.abs(sg[2] - xe) < 0.01;
    hits.push({ k: "msg", xa: sg[0], ya: sg[1], xb: sg[2], yb: sg[3], j });
    if (m.end === "drop" && endIn) {
      xs += `M${f1(xe - 3.5)} ${f1(ye - 3.5)}l7 7M${f1(xe + 3.5)} ${f1(ye - 3.5)}l-7 7`;
    }
    const d = `M${f1(sg[0])} ${f1(sg[1])}L${f1(sg[2])} ${f1(sg[3])}`;
    if (dense) {
      byColor[m.ck] = (byColor[m.ck] || "") + d;
      continue;
    }
    let head = "";
    if (endIn && m.end === "deliver") head = ` marker-end="url(#rs-ah-${m.ck})"`;
    else if (endIn && m.end === "flight") head = ' marker-end="url(#rs-ah-open)"';
    out.push(`<path class="${m.cls}" data-msg="${j}" stroke="${COLOR[m.ck]}" d="${d}"${head}/>`);
  }
  for (const [ck, d] of Object.entries(byColor)) {
    out.push(`<path class="msg" data-msgs="${ck}" stroke="${COLOR[ck]}" d="${d}"/>`);
  }
  if (xs) out.push(`<path class="xmark" d="${xs}"/>`);
  out.push("</g>");
  if (dense) {
    notice.hidden = false;
    notice.textContent = `${vis.length.toLocaleString("en")} messages in view, drawn as ` +
      "plain lines: zoom in (wheel) for arrowheads, or hide heartbeats.";
  } else {
    notice.hidden = true;
  }

  // lane events (commits, votes, timeouts...)
  const marks = {};
  SERVERS.forEach((s, k) => {
    const y = laneY(k);
    for (const m of LANES[k].marks) {
      if (m.t < a || m.t > b) continue;
      const [shp, cls, dy] = markStyle(m);
      const x = X(m.t);
      marks[cls] = (marks[cls] || "") + shape(shp, x, y + dy);
      if (cls === "mk-crash") marks["mk-crash-x"] = (marks["mk-crash-x"] || "") +
        shape("x", x, y);
      hits.push({ k: "mark", x, y: y + dy, i: m.i });
    }
  });
  out.push('<g clip-path="url(#rs-clip)">');
  for (const [cls, d] of Object.entries(marks)) out.push(`<path class="${cls}" d="${d}"/>`);
  for (const m of REMOVALS) {
    if (m.t < a || m.t > b) continue;
    const x = X(m.t), y = laneY(m.k);
    out.push(`<g class="removed-mark" data-server="${esc(m.server)}"><circle cx="${f1(x)}"` +
      ` cy="${y}" r="6.5"/><path d="M${f1(x - 4.6)} ${f1(y + 4.6)}l9.2 -9.2"/></g>`);
    hits.push({ k: "mark", x, y, i: m.i, removed: m.server });
  }
  out.push("</g>");

  // annotation labels, stacked in rows above the lanes
  if (ANN_ROWS) {
    out.push("<g>");
    for (const { n, label, x, w, row } of placeLabels(visAnn, ANN_ROWS, x0, x1)) {
      const y = AXIS_H + 5 + row * ROW_H;
      out.push(`<g class="alabel ${n.cls}"><rect x="${f1(x)}" y="${y}" width="${f1(w)}"` +
        ` height="${ROW_H - 3}" rx="4"/><text x="${f1(x + 6)}" y="${y + 11}">` +
        `${esc(label)}</text></g>`);
      hits.push({ k: "alabel", x0: x, x1: x + w, y0: y, y1: y + ROW_H - 3, n });
    }
    out.push("</g>");
  }
  out.push('<g id="rs-hover"></g>');
  svg.innerHTML = out.join("");

  $("rs-range").textContent = `${fmtT(a)} \u2013 ${fmtT(b)}  (${fmtDur(b - a)} shown)`;
  renderOverview();
  storyInView();
  redrawHover();
}

// ------------------------------------------------------------------ overview (range slider)
let ovCache = { w: -1, html: "" };
const OX = (t) => LEFT + ((t - LO) / (HI - LO)) * (W - LEFT - RIGHT);
const OT = (x) => LO + ((x - LEFT) / (W - LEFT - RIGHT)) * (HI - LO);
function renderOverview() {
  ov.setAttribute("width", W);
  ov.setAttribute("height", OV_H);
  ov.setAttribute("viewBox", `0 0 ${W} ${OV_H}`);
  const x0 = LEFT, x1 = W - RIGHT;
  if (ovCache.w !== W) {
    const nb = Math.max(1, Math.floor((x1 - x0) / 3));
    const bins = new Array(nb).fill(0);
    for (const m of MSGS) {
      const q = Math.floor(((m.t0 - LO) / (HI - LO)) * nb);
      bins[Math.min(nb - 1, Math.max(0, q))]++;
    }
    const peak = Math.max(1, ...bins);
    let d = "";
    bins.forEach((c, q) => {
      if (c) {
        const h = Math.max(1.5, (c / peak) * (OV_H - 16));
        d += `M${f1(x0 + q * 3)} ${f1(OV_H - 12 - h)}h2.4v${f1(h)}h-2.4z`;
      }
    });
    const parts = [`<rect class="ov-bg" x="${x0}" y="2" width="${x1 - x0}"` +
      ` height="${OV_H - 14}" rx="3"/>`, `<path class="ov-hist" d="${d}"/>`];
    for (const n of ANN) {
      if (n.cls === "fault") {
        const x = f1(OX(n.t));
        parts.push(`<line class="ov-fault" x1="${x}" x2="${x}" y1="3" y2="${OV_H - 13}"/>`);
      }
    }
    for (const i of ORDER) {
      if (REC[i].kind === "role" && REC[i].role === "leader") {
        const x = f1(OX(T[i]));
        parts.push(`<line class="ov-lead" x1="${x}" x2="${x}" y1="3" y2="11"/>`);
      }
    }
    parts.push(`<text class="ov-t" x="${x0}" y="${OV_H - 1}">${T0.toFixed(3)} s</text>` +
      `<text class="ov-t" x="${x1}" y="${OV_H - 1}" text-anchor="end">${T1.toFixed(3)} s` +
      "</text>" + `<text class="ov-t" x="${x0 - 8}" y="${OV_H / 2 - 2}" text-anchor="end">` +
      "whole run</text>");
    ovCache = { w: W, html: parts.join("") };
  }
  const bx0 = Math.max(x0, OX(view.a)), bx1 = Math.min(x1, Math.max(OX(view.b), bx0 + 3));
  ov.innerHTML = ovCache.html +
    `<rect class="ov-shade" x="${x0}" y="2" width="${f1(bx0 - x0)}" height="${OV_H - 14}"/>` +
    `<rect class="ov-shade" x="${f1(bx1)}" y="2" width="${f1(x1 - bx1)}"` +
    ` height="${OV_H - 14}"/>` +
    `<rect class="ov-brush" x="${f1(bx0)}" y="1" width="${f1(bx1 - bx0)}"` +
    ` height="${OV_H - 12}" rx="2"/>` +
    `<rect class="ov-handle" x="${f1(bx0 - 2)}" y="9" width="4" height="16" rx="1.5"/>` +
    `<rect class="ov-handle" x="${f1(bx1 - 2)}" y="9" width="4" height="16" rx="1.5"/>`;
}

// ------------------------------------------------------------------ hover and tooltips
function segDist(px, py, h) {
  const dx = h.xb - h.xa, dy = h.yb - h.ya, l2 = dx * dx + dy * dy;
  let u = l2 ? ((px - h.xa) * dx + (py - h.ya) * dy) / l2 : 0;
  u = Math.max(0, Math.min(1, u));
  return Math.hypot(px - (h.xa + u * dx), py - (h.ya + u * dy));
}
function hitTest(x, y) {
  let best = null, bestD = 7;
  for (const h of hits) {
    let d = Infinity;
    if (h.k === "mark") d = Math.hypot(x - h.x, y - h.y) - 2.5;
    else if (h.k === "msg") d = segDist(x, y, h);
    else if (h.k === "alabel") {
      d = x >= h.x0 && x <= h.x1 && y >= h.y0 && y <= h.y1 ? -1 : Infinity;
    } else if (h.k === "ann") d = y >= h.y0 && y <= h.y1 ? Math.abs(x - h.x) + 1.5 : Infinity;
    else if (h.k === "bar") {
      d = x >= h.x0 && x <= h.x1 && Math.abs(y - h.y) <= 7 ? 4.5 : Infinity;
    }
    if (d < bestD) { bestD = d; best = h; }
  }
  return best;
}

function fieldRows(r, skip) {
  const rows = [];
  for (const [k, v] of Object.entries(r)) {
    if (skip.includes(k)) continue;
    let s = typeof v === "string" ? v : JSON.stringify(v);
    if (s === undefined) s = String(v);
    if (s.length > 400) s = s.slice(0, 400) + "\u2026";
    rows.push(`<tr><th>${esc(k)}</th><td>${esc(s)}</td></tr>`);
  }
  return rows.join("");
}

function msgSentence(m) {
  const r = m.si >= 0 ? REC[m.si] : REC[m.ei];
  let what;
  switch (m.msg) {
    case "AppendEntries":
      what = r.n === 0 ? `a heartbeat (no entries, after index ${str(r.prev)})`
        : `${str(r.n)} log entr${r.n === 1 ? "y" : "ies"} after index ${str(r.prev)}`;
      if (r.commit !== undefined) what += `, leader commit ${str(r.commit)}`;
      break;
    case "AppendEntriesResponse":
      what = r.ok === false ? "a refusal: its log does not match there" +
        (r.match !== undefined ? ` (hint ${str(r.match)})` : "")
        : `a success: its log matches up to index ${str(r.match)}`;
      break;
    case "RequestVote":
      what = (r.pre ? "a pre-vote request" : "a vote request") + ` for term ${str(r.term)}`;
      if (r.last_index !== undefined) {
        what += ` (its log ends at index ${str(r.last_index)}, term ${str(r.last_term)})`;
      }
      break;
    case "RequestVoteResponse":
      what = (r.granted ? "a yes" : "a no") + (r.pre ? " to the pre-vote" : " vote") +
        ` in term ${str(r.term)}`;
      break;
    case "InstallSnapshot":
      what = `its snapshot up to index ${str(r.index)}`;
      break;
    case "InstallSnapshotResponse":
      what = `a snapshot acknowledgement (matches up to ${str(r.match)})`;
      break;
    case "TimeoutNow":
      what = "TimeoutNow: start an election at once (leadership transfer)";
      break;
    default:
      what = m.msg;
  }
  let fate;
  if (m.end === "deliver") {
    fate = m.si >= 0 ? `delivered after ${fmtDur(m.t1 - m.t0)}` :
      "delivered (its send is not in the trace)";
  } else if (m.end === "drop") {
    const e = REC[m.ei];
    fate = `lost (${str(e.reason) || "dropped"})` +
      (m.t1 > m.t0 ? ` on arrival, after ${fmtDur(m.t1 - m.t0)}` : " as it was sent");
  } else {
    fate = "still in flight when the trace ends";
  }
  return `${m.src} sends ${m.dst} ${what}; ${fate}.`;
}

function tipHtml(h) {
  const timeLine = (t) => `<div class="tt-t">${esc(fmtT(t))}</div>`;
  if (h.k === "msg") {
    const m = MSGS[h.j];
    const r = m.si >= 0 ? REC[m.si] : REC[m.ei];
    const e = m.ei >= 0 ? REC[m.ei] : null;
    let times = `sent ${fmtT(m.t0)}`;
    if (m.end === "deliver") times = (m.si >= 0 ? times + " \u2192 " : "") +
      `delivered ${fmtT(m.t1)}`;
    else if (m.end === "drop") times += ` \u2192 dropped ${fmtT(m.t1)}`;
    return `<div class="tt-h"><span class="sw" style="background:${COLOR[m.ck]}"></span>` +
      `${esc(m.src)} \u2192 ${esc(m.dst)} \u00b7 ${esc(m.msg)}` +
      `${m.hb ? " (heartbeat)" : ""}</div><div class="tt-t">${esc(times)}</div>` +
      `<div class="tt-s">${esc(msgSentence(m))}</div><table>` +
      fieldRows(r, ["t", "server", "to", "from"]) +
      (e && e.reason !== undefined ? `<tr><th>reason</th><td>${esc(e.reason)}</td></tr>` : "") +
      "</table>";
  }
  if (h.k === "bar") {
    const g = h.g, s = SERVERS[h.lane];
    let what;
    if (g.absent) what = "not started yet";
    else if (!g.up) what = "down (crashed): it handles nothing, its disk survives";
    else {
      what = g.role === "leader" ? `leader of term ${g.term}` :
        g.role === "follower" ? `follower in term ${g.term}` +
          (g.leader ? `, following ${g.leader}` : ", no leader known") :
        `${g.role} in term ${g.term}`;
      if (g.paused) what += "; paused (frozen, like SIGSTOP)";
    }
    return `<div class="tt-h"><span class="sw" style="background:${serverColor(s)}"></span>` +
      `${esc(s)}</div><div class="tt-t">${esc(fmtT(g.since))} \u2013 ${esc(fmtT(g.t1))}` +
      ` (${esc(fmtDur(g.t1 - g.since))})</div><div class="tt-s">${esc(s)} is ${esc(what)}.` +
      "</div>";
  }
  const i = h.k === "mark" ? h.i : h.n.i;
  const r = REC[i];
  const who = r.server == null ? "cluster" : str(r.server);
  let note = NOTE.get(i);
  if (h.removed) {
    note = `${h.removed} is removed from the cluster: the configuration committed at index` +
      ` ${str(r.index)} leaves it out`;
  } else if (!note && r.kind === "append") {
    const terms = Array.isArray(r.terms) ? ` (term${r.terms.length > 1 ? "s" : ""} ` +
      `${r.terms.join(", ")})` : "";
    note = num(r.from) === num(r.to) ? `stored entry ${str(r.from)}${terms} in its log`
      : `stored entries ${str(r.from)}\u2013${str(r.to)}${terms} in its log`;
  }
  const sentence = note ? (r.server == null || h.removed ? note : who + " " + note) : "";
  return `<div class="tt-h">${esc(who)} \u00b7 ${esc(str(r.kind))}` +
    `${r.fault ? " \u00b7 " + esc(str(r.fault)) : ""}</div>` + timeLine(T[i]) +
    (sentence ? `<div class="tt-s">${esc(sentence)}</div>` : "") +
    `<table>${fieldRows(r, r.server == null ? ["t", "server", "term"] : ["t"])}</table>`;
}

let pinned = false, hovered = null, cursorX = null, storyMark = null;
function showTip(h, cx, cy) {
  tip.innerHTML = tipHtml(h) + (pinned ? '<div class="tt-pin">pinned: click elsewhere or ' +
    "press Esc to close</div>" : "");
  tip.hidden = false;
  tip.classList.toggle("pinned", pinned);
  const w = tip.offsetWidth, hh = tip.offsetHeight;
  let left = cx + 16, top = cy + 14;
  if (left + w > window.innerWidth - 6) left = Math.max(6, cx - w - 16);
  if (top + hh > window.innerHeight - 6) top = Math.max(6, cy - hh - 14);
  tip.style.left = left + "px";
  tip.style.top = top + "px";
}
function hideTip() {
  tip.hidden = true;
  pinned = false;
  tip.classList.remove("pinned");
}

function redrawHover() {
  const g = $("rs-hover");
  if (!g) return;
  const out = [];
  const x0 = LEFT, x1 = W - RIGHT;
  if (logPin !== null && logPin >= view.a && logPin <= view.b) {
    const x = f1(X(logPin));
    out.push(`<line class="log-pin" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H}"/>`);
  }
  if (storyMark !== null) {
    const t = T[storyMark];
    if (t >= view.a && t <= view.b) {
      const x = f1(X(t));
      out.push(`<line class="story-cursor" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H}"/>`);
      const k = LANE.get(str(REC[storyMark].server));
      if (k !== undefined) out.push(`<circle class="hl" cx="${x}" cy="${laneY(k)}" r="8"/>`);
    }
  }
  if (cursorX !== null && cursorX >= x0 && cursorX <= x1) {
    const x = f1(cursorX), label = fmtT(tAt(cursorX));
    const w = textW(label, "", "cursor-t") + 10;
    const lx = Math.min(Math.max(x0, x - w / 2), x1 - w);
    out.push(`<line class="cursor" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H}"/>` +
      `<g class="cursor-t"><rect x="${f1(lx)}" y="3" width="${f1(w)}" height="15" rx="3"/>` +
      `<text x="${f1(lx + w / 2)}" y="14" text-anchor="middle">${esc(label)}</text></g>`);
  }
  const h = hovered;
  if (h) {
    if (h.k === "msg") {
      const m = MSGS[h.j];
      out.push(`<path class="hl-line" stroke="${COLOR[m.ck]}" d="M${f1(h.xa)} ${f1(h.ya)}` +
        `L${f1(h.xb)} ${f1(h.yb)}"/><circle class="hl" cx="${f1(h.xa)}" cy="${f1(h.ya)}"` +
        ` r="4"/><circle class="hl" cx="${f1(h.xb)}" cy="${f1(h.yb)}" r="4"/>`);
    } else if (h.k === "mark") {
      out.push(`<circle class="hl" cx="${f1(h.x)}" cy="${f1(h.y)}" r="7"/>`);
    } else if (h.k === "ann" || h.k === "alabel") {
      const x = f1(X(h.n.t));
      out.push(`<line class="hl" x1="${x}" x2="${x}" y1="${AXIS_H}" y2="${H}"/>`);
    } else if (h.k === "bar") {
      out.push(`<rect class="hl" x="${f1(h.x0)}" y="${h.y - 7}" width="${f1(h.x1 - h.x0)}"` +
        ' height="14" rx="3"/>');
    }
  }
  g.innerHTML = out.join("");
}

function local(e) {
  const r = svg.getBoundingClientRect();
  return { x: e.clientX - r.left, y: e.clientY - r.top };
}
function hoverAt(e) {
  const p = local(e);
  cursorX = p.x;
  const h = hitTest(p.x, p.y);
  if (!pinned) {
    hovered = h;
    if (h) showTip(h, e.clientX, e.clientY); else hideTip();
  }
  nearStory(tAt(p.x));
  if (logPin === null) showLogs(Math.max(LO, Math.min(HI, tAt(p.x))));
  redrawHover();
}

// ------------------------------------------------------------------ diagram interaction
let drag = null;
svg.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  drag = { x: e.clientX, a: view.a, b: view.b, moved: false };
  svg.setPointerCapture(e.pointerId);
});
svg.addEventListener("pointermove", (e) => {
  if (drag) {
    const dx = e.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (drag.moved) {
      svg.classList.add("dragging");
      if (!pinned) { hovered = null; tip.hidden = true; }
      const dt = pxToT(dx);
      setView(drag.a - dt, drag.b - dt, true);
      return;
    }
  }
  hoverAt(e);
});
svg.addEventListener("pointerup", (e) => {
  if (!drag) return;
  const d = drag;
  drag = null;
  svg.classList.remove("dragging");
  if (d.moved) return;
  const p = local(e);
  const h = hitTest(p.x, p.y);
  if (h) {
    hovered = h;
    pinned = true;
    showTip(h, e.clientX, e.clientY);
  } else {
    hideTip();
    hovered = null;
  }
  scrollStoryTo(tAt(p.x));
  logPin = Math.max(LO, Math.min(HI, tAt(p.x)));
  showLogs(logPin);
  redrawHover();
});
svg.addEventListener("pointerleave", () => {
  cursorX = null;
  showLogs(logPin);
  if (!pinned) { hovered = null; tip.hidden = true; }
  nearStory(null);
  redrawHover();
});
svg.addEventListener("wheel", (e) => {
  e.preventDefault();
  const scale = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
  const dx = e.deltaX * scale, dy = e.deltaY * scale;
  if (e.shiftKey || Math.abs(dx) > Math.abs(dy)) {
    const dt = pxToT(dx || dy);
    setView(view.a + dt, view.b + dt, true);
  } else {
    zoomAt(tAt(local(e).x), Math.exp(Math.max(-3, Math.min(3, dy * 0.0015))));
  }
}, { passive: false });
svg.addEventListener("dblclick", () => setView(LO, HI, true));

// overview: drag the window, its edges, or sweep a new window
let ovDrag = null;
ov.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  const x = e.clientX - ov.getBoundingClientRect().left;
  const bx0 = OX(view.a), bx1 = OX(view.b);
  let mode = "new";
  if (Math.abs(x - bx0) <= 6) mode = "left";
  else if (Math.abs(x - bx1) <= 6) mode = "right";
  else if (x > bx0 && x < bx1) mode = "move";
  ovDrag = { mode, x, a: view.a, b: view.b, moved: false };
  ov.setPointerCapture(e.pointerId);
});
ov.addEventListener("pointermove", (e) => {
  if (!ovDrag) return;
  const x = e.clientX - ov.getBoundingClientRect().left;
  if (Math.abs(x - ovDrag.x) > 2) ovDrag.moved = true;
  if (!ovDrag.moved) return;
  const dt = OT(x) - OT(ovDrag.x);
  if (ovDrag.mode === "move") setView(ovDrag.a + dt, ovDrag.b + dt, true);
  else if (ovDrag.mode === "left") setView(Math.min(ovDrag.a + dt, ovDrag.b - MIN_SPAN),
    ovDrag.b, true);
  else if (ovDrag.mode === "right") setView(ovDrag.a, Math.max(ovDrag.b + dt,
    ovDrag.a + MIN_SPAN), true);
  else setView(Math.min(OT(x), OT(ovDrag.x)), Math.max(OT(x), OT(ovDrag.x)), true);
});
ov.addEventListener("pointerup", (e) => {
  if (!ovDrag) return;
  const d = ovDrag;
  ovDrag = null;
  if (d.moved) return;
  const t = OT(e.clientX - ov.getBoundingClientRect().left), span = view.b - view.a;
  setView(t - span / 2, t + span / 2, true);
});

// ------------------------------------------------------------------ narration list
function storyClass(r) {
  const kind = str(r.kind);
  if (kind === "role" && r.role === "leader") return "lead";
  if (kind === "fault") {
    return r.fault === "heal" || r.fault === "restart" || r.fault === "resume" ? "heal"
      : "fault";
  }
  if (kind === "expect") return r.ok ? "ok" : "bad";
  if (kind === "say" || kind === "api") return kind;
  return "";
}
if (STORY.length) {
  storyEl.innerHTML = STORY.map((i, n) => {
    const r = REC[i], s = r.server == null ? "" : str(r.server);
    return `<li data-n="${n}" class="${storyClass(r)}"><time>${T[i].toFixed(3)}</time>` +
      `<b style="color:${serverColor(s)}">${esc(s || "\u2014")}</b>` +
      `<span>${NOTE_HTML.has(i) ? NOTE_HTML.get(i) : esc(NOTE.get(i))}</span></li>`;
  }).join("");
} else {
  storyEl.innerHTML = '<li class="rs-story-empty">Nothing to narrate.</li>';
}
const items = storyEl.querySelectorAll("li[data-n]");
function lowerBound(t, strict) {
  let lo = 0, hi = STORY_T.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (strict ? STORY_T[mid] <= t : STORY_T[mid] < t) lo = mid + 1; else hi = mid;
  }
  return lo;
}
let inLo = 0, inHi = 0;
function storyInView() {
  const lo = lowerBound(view.a, false), hi = lowerBound(view.b, true);
  const from = Math.min(lo, inLo), to = Math.max(hi, inHi);
  for (let n = from; n < to; n++) items[n].classList.toggle("inview", n >= lo && n < hi);
  inLo = lo;
  inHi = hi;
  if (followStory && lo < items.length) {
    storyEl.scrollTop = items[lo].offsetTop - storyEl.offsetTop;
  }
  followStory = false;
}
let nearEl = null;
function nearStory(t) {
  if (nearEl) nearEl.classList.remove("near");
  nearEl = null;
  if (t === null || !items.length) return;
  const n = lowerBound(t, true) - 1;
  if (n >= 0) { nearEl = items[n]; nearEl.classList.add("near"); }
}
function scrollStoryTo(t) {
  const n = Math.max(0, lowerBound(t, true) - 1);
  if (!items.length) return;
  const el = items[n];
  storyEl.scrollTop = el.offsetTop - storyEl.offsetTop - storyEl.clientHeight / 2;
}
let selected = null;
storyEl.addEventListener("mouseover", (e) => {
  const li = e.target.closest("li[data-n]");
  if (!li) return;
  storyMark = STORY[Number(li.dataset.n)];
  redrawHover();
});
storyEl.addEventListener("mouseleave", () => {
  storyMark = selected === null ? null : STORY[Number(selected.dataset.n)];
  redrawHover();
});
storyEl.addEventListener("click", (e) => {
  const li = e.target.closest("li[data-n]");
  if (!li) return;
  if (selected) selected.classList.remove("sel");
  selected = li;
  li.classList.add("sel");
  const i = STORY[Number(li.dataset.n)], t = T[i], span = view.b - view.a;
  storyMark = i;
  if (t < view.a + span * 0.05 || t > view.b - span * 0.05) {
    setView(t - span / 2, t + span / 2, false);
  } else {
    redrawHover();
  }
});
$("rs-story-filter").addEventListener("input", (e) => {
  const q = e.target.value.trim().toLowerCase();
  for (const li of items) li.hidden = q !== "" && !li.textContent.toLowerCase().includes(q);
});

// ------------------------------------------------------------------ log view
const logNow = $("rs-log-now"), logWhen = $("rs-logs-when");
let logPin = null, logShown = "";
function showLogs(t) {
  const P = t === null ? ORDER.length - 1 : posAt(t);
  const how = t === null ? "end" : t === logPin ? "pin" : "hover";
  if (logShown === P + how) return;
  logShown = P + how;
  logNow.innerHTML = logGrid(P, Math.max(360, logNow.clientWidth || W));
  const at = P >= 0 ? T[ORDER[P]] : T0;
  logWhen.textContent = how === "end"
    ? `at the end of the run (${T1.toFixed(3)} s); hover the diagram to see them at any` +
      " moment, click it to pin one"
    : how === "pin" ? `at ${at.toFixed(3)} s (pinned; Esc goes back to the end)`
    : `at ${at.toFixed(3)} s (under the pointer)`;
}
function keySwatch(cls, body) {
  return `<svg width="${CW + 2}" height="${CH + 2}"><g class="lc ${cls}"><rect x="1" y="1"` +
    ` width="${CW}" height="${CH}" rx="3" fill="${cls === "c" ? TERM_FILL[2] : "#fff"}"` +
    ` stroke="${TERM_LINE[2]}"/><text x="${1 + CW / 2}" y="${CH / 2 + 5}"` +
    ` text-anchor="middle" font-size="11.5" fill="${cls === "c" ? "#212529" :
      TERM_LINE[2]}">2</text>${body || ""}</g></svg>`;
}
$("rs-logs-key").innerHTML = [
  `<span>${keySwatch("c")}committed entry (the number is its term)</span>`,
  `<span>${keySwatch("u")}not committed yet</span>`,
  `<span>${keySwatch("c", `<path class="lc-was-mark" d="M${CW - 8} 1h9v9z"/>`)}` +
    "replaced a removed entry (hover it)</span>",
  '<span><svg width="26" height="22"><g class="lc ghost"><rect x="1" y="1" width="24"' +
    ' height="20" rx="3"/><text x="13" y="15" text-anchor="middle" font-size="11.5">2' +
    '</text><path d="M4 18L22 4"/></g></svg>removed (truncated) entry</span>',
  `<span>${keySwatch("c", `<rect class="lc-conf" x="3" y="${CH - 3}" width="${CW - 4}"` +
    ' height="2"/>')}configuration entry</span>`,
  `<span>${keySwatch("c", `<rect class="lc-snap" x="3" y="3" width="${CW - 4}"` +
    ' height="2"/>')}compacted into a snapshot</span>`,
].join("");
const SAYS = ORDER.filter((i) => str(REC[i].kind) === "say");
function buildFrames() {
  if (!SAYS.length || !SERVERS.length) return;
  const maxW = Math.max(360, logNow.clientWidth || W);
  const frame = (i, P, caption) => `<figure class="rs-frame" data-record="${i}">` +
    `<figcaption><time>${T[i].toFixed(3)} s</time>${caption}</figcaption>` +
    `${logGrid(P, maxW)}</figure>`;
  const parts = SAYS.map((i) => frame(i, POS[i],
    NOTE_HTML.has(i) ? NOTE_HTML.get(i) : esc(str(REC[i].text))));
  const endI = ORDER[ORDER.length - 1];
  const later = new Set(["start", "crash", "append", "truncate", "commit", "role", "fault",
    "snapshot", "snapshot-installed", "config-committed"]);
  if (ORDER.slice(POS[SAYS[SAYS.length - 1]] + 1).some((i) => later.has(str(REC[i].kind)))) {
    parts.push(frame(endI, ORDER.length - 1, "<em>the end of the run</em>"));
  }
  $("rs-frames").innerHTML = parts.join("");
  $("rs-frames-wrap").hidden = false;
}
$("rs-frames").addEventListener("click", (e) => {
  const fig = e.target.closest("figure[data-record]");
  if (!fig || e.target.closest("a")) return;
  const t = T[Number(fig.dataset.record)], span = view.b - view.a;
  logPin = t;
  showLogs(t);
  if (t < view.a || t > view.b) setView(t - span / 2, t + span / 2, false);
  else redrawHover();
});

// ------------------------------------------------------------------ toolbar, legend, stats
$("rs-fit").addEventListener("click", () => setView(LO, HI, true));
$("rs-zoom-in").addEventListener("click",
  () => zoomAt((view.a + view.b) / 2, 0.5));
$("rs-zoom-out").addEventListener("click",
  () => zoomAt((view.a + view.b) / 2, 2));
const toggles = { "rs-show-heartbeats": "hb", "rs-show-messages": "messages",
  "rs-show-drops": "drops" };
for (const [id, key] of Object.entries(toggles)) {
  $(id).addEventListener("change", (e) => {
    show[key] = e.target.checked;
    syncLegend();
    schedule();
  });
}
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
  const span = view.b - view.a;
  if (e.key === "+" || e.key === "=") zoomAt((view.a + view.b) / 2, 0.5);
  else if (e.key === "-") zoomAt((view.a + view.b) / 2, 2);
  else if (e.key === "0" || e.key === "f") setView(LO, HI, true);
  else if (e.key === "ArrowLeft") setView(view.a - span * 0.2, view.b - span * 0.2, true);
  else if (e.key === "ArrowRight") setView(view.a + span * 0.2, view.b + span * 0.2, true);
  else if (e.key === "Escape") {
    hideTip();
    hovered = null;
    logPin = null;
    showLogs(null);
    redrawHover();
  }
});
window.addEventListener("resize", schedule);
document.addEventListener("pointerdown", (e) => {
  if (pinned && !svg.contains(e.target) && !tip.contains(e.target)) {
    hideTip();
    hovered = null;
    redrawHover();
  }
});

function swatchLine(color, dash, head) {
  return `<svg width="26" height="12"><line x1="1" y1="6" x2="${head ? 20 : 25}" y2="6"` +
    ` stroke="${color}" stroke-width="1.6"${dash ? ` stroke-dasharray="${dash}"` : ""}/>` +
    (head ? `<path d="M18 2L25 6L18 10z" fill="${color}"/>` : "") + "</svg>";
}
function swatchBar(cls, extra) {
  return `<svg width="24" height="12"><rect class="bar ${cls}" x="0" y="1" width="24"` +
    ` height="10" rx="2"/>${extra || ""}</svg>`;
}
function swatchMark(shp, cls) {
  return `<svg width="14" height="14"><path class="${cls}" d="${shape(shp, 7, 7)}"/></svg>`;
}
const LEGEND_MSGS = [
  ["vote", "vote request", COLOR.vote], ["vote-resp", "vote reply", COLOR["vote-resp"]],
  ["append", "AppendEntries", COLOR.append],
  ["append-resp", "AppendEntries reply", COLOR["append-resp"]],
  ["hb", "heartbeat + reply", COLOR["append-hb"]], ["snapshot", "snapshot", COLOR.snapshot],
  ["other", "other (TimeoutNow)", COLOR.other],
];
function buildLegend() {
  const it = (sw, label, title) => `<span class="it"${title ? ` title="${esc(title)}"` : ""}>` +
    `${sw}${esc(label)}</span>`;
  const roles = [it(swatchBar("follower"), "follower"), it(swatchBar("pre-candidate"),
    "pre-candidate"), it(swatchBar("candidate"), "candidate"), it(swatchBar("leader"),
    "leader"), it(swatchBar("follower", '<rect class="bar paused" x="0" y="1" width="24"' +
    ' height="10"/>'), "paused"), it('<svg width="24" height="12"><line class="down" x1="0"' +
    ' y1="6" x2="24" y2="6"/></svg>', "crashed")];
  const msgs = LEGEND_MSGS.map(([key, label, color]) =>
    `<button type="button" class="it" data-toggle="${key}" aria-pressed="true"` +
    ` title="click to hide or show">${swatchLine(color, "", true)}${esc(label)}</button>`);
  msgs.push(it(swatchLine("#868e96", "6 3", true), "pre-vote", "dashed: pre-vote"));
  msgs.push(it(swatchLine("#868e96", "1.5 2.5", true), "refused",
    "dotted: vote refused, or log mismatch"));
  msgs.push(it('<svg width="26" height="12"><line x1="1" y1="6" x2="20" y2="6"' +
    ' stroke="#868e96" stroke-width="1.6" stroke-dasharray="3 2"/><path class="xmark"' +
    ' d="M17 3l6 6M23 3l-6 6"/></svg>', "dropped"));
  msgs.push(it(swatchLine("#868e96", "2 4", false), "in flight at end"));
  const evs = [it(swatchMark("diamond", "mk-commit"), "commit (leader)"),
    it(swatchMark("diamond", "mk-commit-f"), "commit (follower)"),
    it(swatchMark("circle", "mk-timeout"), "election timeout"),
    it(swatchMark("dot", "mk-vote"), "vote given"), it(swatchMark("dot", "mk-vote-no"),
      "vote refused"), it(swatchMark("tri-down", "mk-stepdown"), "step down"),
    it(swatchMark("square", "mk-config"), "configuration"),
    it(swatchMark("cell", "mk-append"), "log append"),
    it(swatchMark("tri-left", "mk-truncate"), "log truncated"),
    it('<svg width="14" height="14"><g class="removed-mark"><circle cx="7" cy="7" r="5.5"/>' +
      '<path d="M3.2 10.8l7.6 -7.6"/></g></svg>', "removed from the cluster"),
    it(swatchMark("circle", "mk-snapshot"), "snapshot"),
    it('<svg width="14" height="14"><path class="mk-crash" d="' + shape("big", 7, 7) +
      '"/><path class="mk-crash-x" d="' + shape("x", 7, 7) + '"/></svg>', "crash"),
    it(swatchMark("tri-right", "mk-start"), "start")];
  const anns = [it(swatchLine("#e03131", "4 3", false), "fault"),
    it(swatchLine("#2f9e44", "4 3", false), "heal / restart"),
    it(swatchLine("#7048e8", "4 3", false), "API call"),
    it(swatchLine("#868e96", "4 3", false), "narration"),
    it('<svg width="20" height="14"><rect class="side-0" x="0" y="0" width="20" height="7"/>' +
      '<rect class="side-1" x="0" y="7" width="20" height="7"/><line class="wall" x1="0"' +
      ' x2="20" y1="7" y2="7"/></svg>', "partition: one tint per side, a wall between",
      "lanes with the same tint can talk; nothing crosses a red wall")];
  $("rs-legend").innerHTML =
    `<span class="grp"><b>Role</b>${roles.join("")}</span>` +
    `<span class="grp"><b>Messages</b>${msgs.join("")}</span>` +
    `<span class="grp"><b>Events</b>${evs.join("")}</span>` +
    `<span class="grp"><b>Annotations</b>${anns.join("")}</span>`;
  $("rs-legend").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-toggle]");
    if (!btn) return;
    const key = btn.dataset.toggle;
    show[key] = !show[key];
    if (key === "hb") $("rs-show-heartbeats").checked = show.hb;
    syncLegend();
    schedule();
  });
}
function syncLegend() {
  for (const btn of document.querySelectorAll("#rs-legend button[data-toggle]")) {
    btn.setAttribute("aria-pressed", String(!!show[btn.dataset.toggle]));
  }
}
buildLegend();
const statBits = [`${SERVERS.length} server${SERVERS.length === 1 ? "" : "s"}`];
if (REC.length) {
  statBits.push(`${T0.toFixed(3)} s \u2013 ${T1.toFixed(3)} s`);
  statBits.push(`${sendCount.toLocaleString("en")} messages (${dropCount.toLocaleString("en")}` +
    ` dropped, ${flightCount.toLocaleString("en")} in flight at the end)`);
  statBits.push(`${leaderCount} leader${leaderCount === 1 ? "" : "s"} elected`);
  statBits.push(`${faultCount} fault${faultCount === 1 ? "" : "s"}`);
  statBits.push(`${REC.length.toLocaleString("en")} records`);
} else {
  statBits.push("empty trace");
}
$("rs-stats").textContent = statBits.join(" \u00b7 ");
render();
showLogs(null);
buildFrames();
document.body.dataset.ready = "1";
})();
"""

"""A small, safe subset of Markdown for scenario text (``description`` and ``say``).

Scenario authors write backticks, emphasis and lists because that is how one writes
prose about code; showing ``*this*`` raw in a teaching page is noise. Only what prose
needs is understood: paragraphs, ``-``/``*``/``1.`` lists, ``**strong**``, ``*em*`` or
``_em_``, ```code```, and ``[text](url)`` links to http(s), mailto or relative URLs.
Everything else is text: all input is HTML-escaped first, so no markup in a scenario
file can reach the page as markup. No dependency: the page must stay self-contained.
"""

from __future__ import annotations

import html
import re
import textwrap

__all__ = ["render_markdown", "render_inline", "plain_text"]

_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDER = re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_ITEM = re.compile(r"^\s{0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$")
_SAFE_URL = re.compile(r"^(?:https?://|mailto:|#|/|\.{1,2}/|[\w][\w./-]*$)", re.IGNORECASE)
_SLOT = "\x00{}\x00"
_SLOT_RE = re.compile("\x00(\\d+)\x00")


def render_inline(text: str) -> str:
    """One line of text as HTML: escaped, with code, links and emphasis."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return _SLOT.format(len(slots) - 1)

    # code spans first: nothing inside them is markup
    out = _CODE.sub(lambda m: keep(f"<code>{html.escape(m.group(1))}</code>"),
                    text.replace("\x00", ""))

    def link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if not _SAFE_URL.match(url):
            return m.group(0)
        return keep(f'<a href="{html.escape(url, quote=True)}">{_emphasis(html.escape(label))}'
                    "</a>")

    out = _LINK.sub(link, out)
    out = _emphasis(html.escape(out))
    return _SLOT_RE.sub(lambda m: slots[int(m.group(1))], out)


def _emphasis(escaped: str) -> str:
    escaped = _STRONG.sub(r"<strong>\1</strong>", escaped)
    escaped = _EM_STAR.sub(r"<em>\1</em>", escaped)
    return _EM_UNDER.sub(r"<em>\1</em>", escaped)


def plain_text(text: str) -> str:
    """The text a reader sees once the markup is rendered (for SVG labels)."""
    out = _CODE.sub(lambda m: m.group(1), text)
    out = _LINK.sub(lambda m: m.group(1), out)
    out = _STRONG.sub(r"\1", out)
    out = _EM_STAR.sub(r"\1", out)
    return " ".join(_EM_UNDER.sub(r"\1", out).split())


def render_markdown(text: str) -> str:
    """Block-level rendering: blank lines separate paragraphs; list items may wrap onto
    indented continuation lines."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[list[str]] = []
    ordered = False

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(f"<p>{render_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    def flush_list() -> None:
        if items:
            tag = "ol" if ordered else "ul"
            lis = "".join(f"<li>{render_inline(' '.join(item))}</li>" for item in items)
            blocks.append(f"<{tag}>{lis}</{tag}>")
            items.clear()

    for raw in textwrap.dedent(text.expandtabs(4)).strip("\n").splitlines():
        line = raw.rstrip()
        if not line.strip():
            flush_paragraph()
            flush_list()
            continue
        item = _ITEM.match(line)
        if item and paragraph and item.group(2) not in (None, "1"):
            item = None  # "1999. was a year" inside a paragraph is not a list
        if item:
            flush_paragraph()
            if not items:
                ordered = item.group(2) is not None
            elif ordered != (item.group(2) is not None):
                flush_list()
                ordered = item.group(2) is not None
            items.append([item.group(3).strip()])
        elif items and raw[:1].isspace():
            items[-1].append(line.strip())
        else:
            flush_list()
            paragraph.append(line.strip())
    flush_paragraph()
    flush_list()
    return "\n".join(blocks)

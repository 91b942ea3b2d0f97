"""The Markdown subset of scenario text: what prose needs, and nothing that can inject."""

from __future__ import annotations

import pytest

from raftsim.viz.markdown import plain_text, render_inline, render_markdown


def test_paragraphs_are_separated_by_blank_lines_and_lines_joined() -> None:
    text = """
        An entry is committed
        when stored on a majority.

        A second paragraph.
    """
    assert render_markdown(text) == ("<p>An entry is committed when stored on a majority.</p>\n"
                                     "<p>A second paragraph.</p>")


def test_lists_with_continuation_lines() -> None:
    text = "Steps:\n- first\n  continued\n- second\n\n1. one\n2. two"
    assert render_markdown(text) == ("<p>Steps:</p>\n<ul><li>first continued</li>"
                                     "<li>second</li></ul>\n<ol><li>one</li><li>two</li></ol>")


def test_a_number_inside_a_paragraph_does_not_start_a_list() -> None:
    assert render_markdown("It was the year\n1999. A fine year.") == (
        "<p>It was the year 1999. A fine year.</p>")


@pytest.mark.parametrize("source, html", [
    ("`a *b* <c>`", "<code>a *b* &lt;c&gt;</code>"),
    ("**strong** and *em* and _em_", "<strong>strong</strong> and <em>em</em> and <em>em</em>"),
    ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
    ("[Raft](https://raft.github.io)", '<a href="https://raft.github.io">Raft</a>'),
    ("[file](scenarios/figure-8.toml)", '<a href="scenarios/figure-8.toml">file</a>'),
    ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    ('[x](https://a.b/"onmouseover=alert(1))',
     '<a href="https://a.b/&quot;onmouseover=alert(1">x</a>)'),
    ("<script>alert(1)</script> & \x00", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; "),
])
def test_inline_markup_and_escaping(source: str, html: str) -> None:
    assert render_inline(source) == html


def test_plain_text_drops_the_markup() -> None:
    assert plain_text("run `raftsim` with **care**, see [docs](docs/x.md)\n now") == (
        "run raftsim with care, see docs now")

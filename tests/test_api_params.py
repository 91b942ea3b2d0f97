"""Query-string parsing with Go's rules."""

from __future__ import annotations

import pytest

from raftsim.api.params import parse_bool


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRuE", " true", "2", "on", "y"])
def test_anything_else_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)

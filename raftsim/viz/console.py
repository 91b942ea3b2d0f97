"""Printing narration to a terminal, coloured with rich when it is one."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from rich.console import Console
from rich.text import Text

from raftsim.viz.narration import Line, format_line, terminal_text

_PALETTE = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan",
            "bright_magenta", "bright_green"]


class NarrationPrinter:
    def __init__(self, file: TextIO | None = None, *, color: bool | None = None) -> None:
        out = file or sys.stdout
        self.console = Console(file=out, force_terminal=color, no_color=color is False,
                               highlight=False, soft_wrap=True)
        self._colors: dict[str, str] = {}

    def _color(self, server: str) -> str:
        if server not in self._colors:
            self._colors[server] = _PALETTE[len(self._colors) % len(_PALETTE)]
        return self._colors[server]

    def print_line(self, line: Line) -> None:
        if not self.console.is_terminal:
            self.console.print(format_line(line), markup=False)
            return
        text = Text(f"{line.t:9.3f}s  ", style="dim")
        who = line.server or "--"
        text.append(f"{who:>4}  ", style=self._color(who) if line.server else "bold")
        style = "bold" if line.kind in ("role", "fault", "say") else ""
        if line.kind == "expect":
            style = "green" if "held" in line.text else "bold red"
        text.append(terminal_text(line), style=style)
        self.console.print(text)

    def print_lines(self, lines: Iterable[Line]) -> None:
        for line in lines:
            self.print_line(line)

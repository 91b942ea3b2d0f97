"""The web UI's lessons: the shipped scenario files, played in the browser one
explanation at a time.

A lesson is a scenario file. The page opens on the list of them (title and description,
the tour first); choosing one starts a session that plays the scenario and holds after
each ``say`` step until the student presses Next (``ui_session`` does the holding).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import raftsim
from raftsim.scenario.model import Say
from raftsim.viz.ui_session import MAX_SCENARIO_BYTES, load_scenario_text

__all__ = ["Lesson", "default_lessons_dir", "load_lessons", "LESSON_ORDER"]

log = logging.getLogger(__name__)

#: the order a newcomer should take them in; files not named here come after, by name
LESSON_ORDER = (
    "tour", "first-election", "leader-crash", "split-vote", "log-repair",
    "minority-partition", "majority-partition", "one-way-partition",
    "rejoin-without-prevote", "rejoin-with-prevote", "lossy-network",
    "crash-restart-durable", "figure-8", "figure-8-commit", "leadership-transfer",
    "remove-follower", "remove-leader", "remove-during-partition", "add-nonvoter",
    "snapshot-catch-up",
)


@dataclass(frozen=True, slots=True)
class Lesson:
    name: str
    title: str
    description: str
    #: explanations the lesson stops at (its ``say`` steps)
    stops: int
    #: the scenario file's text
    text: str

    def summary(self) -> dict[str, Any]:
        """What the page's list shows."""
        return {"name": self.name, "title": self.title,
                "description": " ".join(self.description.split()), "stops": self.stops}


def default_lessons_dir() -> Path | None:
    """The ``scenarios/`` directory of this checkout, if raftsim runs from one."""
    candidate = Path(raftsim.__file__).resolve().parent.parent / "scenarios"
    return candidate if candidate.is_dir() else None


def load_lessons(directory: Path | None) -> list[Lesson]:
    """Every scenario file in ``directory`` that loads, in :data:`LESSON_ORDER`; a file
    that does not load is left out with a warning (the UI still starts)."""
    if directory is None:
        return []
    lessons = []
    for path in sorted(directory.glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
            if len(text) > MAX_SCENARIO_BYTES:
                raise ValueError(f"larger than {MAX_SCENARIO_BYTES} bytes")
            scenario = load_scenario_text(text, path.stem)
        except (OSError, ValueError) as exc:
            log.warning("lesson %s left out: %s", path, exc)
            continue
        stops = sum(isinstance(step.action, Say) for step in scenario.steps)
        lessons.append(Lesson(path.stem, scenario.title, scenario.description.strip(),
                              stops, text))
    rank = {name: k for k, name in enumerate(LESSON_ORDER)}
    lessons.sort(key=lambda lesson: (rank.get(lesson.name, len(rank)), lesson.name))
    return lessons

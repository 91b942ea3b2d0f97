"""The one error a scenario file can earn: it is not a scenario we can run."""

from __future__ import annotations

from pathlib import Path


class ScenarioError(Exception):
    """An invalid scenario file. The message names the file, the step number (1-based,
    counting ``[[step]]`` tables) and the key, and says what is allowed."""

    def __init__(self, path: Path | str, problem: str, *, step: int | None = None,
                 key: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.step = step
        self.key = key
        where = [self.path]
        if step is not None:
            where.append(f"step {step}")
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(": ".join([*where, problem]))

"""One Train-tab job's record: what ``job.json`` holds (read by the jobs, their delivery and the tab)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Job:
    """What ``job.json`` records about one training job."""

    id: str
    name_a: str
    name_b: str
    recipe: str  # the recipe's name (its file in the recipes folder, without .yaml)
    steps: int  # the step budget (0: the recipe's own step count)
    minutes: float  # the time budget (0: none)
    created: float
    state: str = "queued"
    resume: bool = False  # the next start continues from the newest checkpoint
    pid: int | None = None
    started: float | None = None
    message: str = ""

    @property
    def key(self) -> str:
        """The finished model's name in the page's model lists."""
        return f"{self.name_a}_{self.name_b}_{self.id}"

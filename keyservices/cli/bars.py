"""Progress bars on a terminal, with rich.

Apart from :mod:`.console` so that rich is imported only when stderr is a terminal: under Task
Scheduler or cron the nightly run reports through the log and never loads it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Rows (customers, facts, values) per second: a long step that slows down shows it."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        speed = task.completed / elapsed if elapsed else None
        if not speed:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:,.0f}/s", style="progress.data.speed")


class RichReporter:
    """Progress bars on stderr, one per step, only when stderr is a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        # a cp437/cp1252 console has no braille dots: an ASCII spinner (the bar adapts itself)
        spinner = "dots" if console.encoding.startswith("utf") else "line"
        self.progress = Progress(SpinnerColumn(spinner), TextColumn("{task.description:<32}"),
                                 BarColumn(), MofNCompleteColumn(), RateColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.task: Any = None
        self.started = False

    def begin(self, step: str, total: int | None) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.task = self.progress.add_task(step, total=total)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def end(self, step: str, count: int, seconds: float) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=max(count, 1), completed=max(count, 1))
            self.task = None

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False

"""On-screen progress (rich): records sent, rate, per-topic totals. Silent when quiet."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


class ProgressView:
    def __init__(self, description: str, total: float | None, quiet: bool):
        self.quiet = quiet
        self.console = Console(stderr=True)
        if quiet:
            self.progress = None
            return
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[stats]}"), console=self.console,
                                 transient=False, refresh_per_second=4)
        self.task = self.progress.add_task(description, total=total, stats="")
        self.progress.start()

    def update(self, completed: float, stats: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=completed, stats=stats)

    def close(self, completed: float | None = None, stats: str | None = None) -> None:
        if self.progress is not None:
            if completed is not None:
                self.progress.update(self.task, completed=completed, stats=stats or "")
            self.progress.stop()

    def print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

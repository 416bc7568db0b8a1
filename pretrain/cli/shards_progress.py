"""Rich progress bar for `tubelet shards build` (the library reports per finished shard)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichBuildProgress:
    """Videos done / total with ETA, plus shards and skipped counts; drawn on stderr."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]shards[/] {task.fields[shards]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("videos, {task.fields[skipped]} skipped"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.task = None
        self.shards_done, self.total_shards, self.skipped = 0, 0, 0

    def __enter__(self) -> "RichBuildProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start(self, total_videos: int, total_shards: int) -> None:
        self.total_shards = total_shards
        self.task = self.progress.add_task("build", total=total_videos, shards=f"0/{total_shards}", skipped=0)

    def advance(self, result) -> None:
        self.shards_done += 1
        self.skipped += len(result.errors)
        self.progress.update(self.task, advance=result.count + len(result.errors),
                             shards=f"{self.shards_done}/{self.total_shards}", skipped=self.skipped)

"""Waiting on Azure's long-running operations, with a live progress line."""

from __future__ import annotations

from typing import TypeVar

from azure.core.polling import LROPoller
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")
# How long one wait on a poller blocks before the progress line refreshes.
POLL_SECONDS = 5.0


def wait_for(poller: LROPoller[T], description: str, *, console: Console) -> T:
    """Block until ``poller`` finishes, showing elapsed time; re-raises the operation's error."""
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(description, total=None)
        while not poller.done():
            poller.wait(timeout=POLL_SECONDS)
        result = poller.result()
        progress.update(task, description=f"{description}: done")
    return result

"""What every benchmark runner shares (standard library only: it runs in every tool's venv).

A runner loads the data (not timed), computes drift (timed with
``time.perf_counter``), and prints one JSON line to stdout with the tool name,
the compute time and its per-feature verdicts.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
DATA_DIR = Path(__file__).parent / "data"


def load_spec(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((data_dir / "spec.json").read_text())
    return spec


def timed(compute: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = compute()
    return result, time.perf_counter() - start


def emit(tool: str, compute_seconds: float, verdicts: dict[str, bool], **extra: Any) -> None:
    record = {"tool": tool, "compute_seconds": compute_seconds, "verdicts": verdicts, **extra}
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
